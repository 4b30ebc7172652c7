"""Ready-made harness set-ups a test module takes as its `h` (`h = alice_plans_here`).

Not a pytest plugin: a fixture here named `h` would otherwise replace the harness everywhere."""

from __future__ import annotations

import pytest

from tests.peers.slack_harness import Harness


@pytest.fixture(name="h")
async def alice_plans_here(h: Harness) -> Harness:
    """The harness with Alice linked to Taiga and the channel planning in the recorded project."""
    await h.link(h.alice, "alice")
    await h.set_project()
    return h
