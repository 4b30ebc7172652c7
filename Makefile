PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Taiga Planner needs Python 3.11+. A .venv made by an older Python would be reused forever
# (and fail in odd ways), so every target that uses it checks first and says how to recreate it.
define CHECK_PYTHON
	@if [ -x $(PY) ]; then \
	  if ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	    echo "error: $(VENV) was made by Python $$($(PY) -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '(broken)'); Taiga Planner needs 3.11 or newer." >&2; \
	    echo "Recreate it: make clean && make PYTHON=python3.11 $(MAKECMDGOALS)  (any python3.11+ on your PATH)" >&2; \
	    exit 1; \
	  fi; \
	elif ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	  echo "error: $(PYTHON) is not Python 3.11 or newer; install one, then: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; \
	  exit 1; \
	fi
endef

.PHONY: run migrate keygen rotate-keys test lint bench clean

$(STAMP): pyproject.toml
	$(CHECK_PYTHON)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(CHECK_PYTHON)
	$(PY) -m bot

migrate: $(STAMP)
	$(CHECK_PYTHON)
	$(PY) -m bot migrate

keygen: $(STAMP)
	$(CHECK_PYTHON)
	@$(PY) -m bot keygen

rotate-keys: $(STAMP)
	$(CHECK_PYTHON)
	$(PY) -m bot rotate-keys

test: $(STAMP)
	$(CHECK_PYTHON)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: $(STAMP)
	$(CHECK_PYTHON)
	$(PY) -m bench

clean:
	rm -rf $(VENV)
