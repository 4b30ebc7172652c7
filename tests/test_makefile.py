"""The Makefile refuses a .venv made by a Python older than 3.11 and says how to recreate it
(the real Makefile, run by `make` against a stand-in interpreter that reports 3.10)."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OLD_PYTHON = """#!/bin/sh
case "$*" in
  *platform*) echo 3.10.13 ;;
  *version_info*) exit 1 ;;
  *) echo "should not be run: $*" >&2; exit 99 ;;
esac
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_venv_from_an_old_python_is_refused_with_the_fix(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(OLD_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)

    done = subprocess.run(
        ["make", "run"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode != 0
    assert "error: .venv was made by Python 3.10.13; Taiga Planner needs 3.11" in done.stderr
    assert "make clean && make PYTHON=python3.11 run" in done.stderr
    assert "should not be run" not in done.stderr  # nothing was installed into it
