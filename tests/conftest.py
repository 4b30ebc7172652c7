import pytest

pytest_plugins = ["tests.peers.fake_anthropic"]
pytest_plugins += ["tests.peers.databases"]
pytest_plugins += ["tests.peers.fake_slack"]
pytest_plugins += ["tests.peers.fake_taiga"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
pytest_plugins += ["tests.peers.slack_harness"]
pytest_plugins += ["tests.peers.cli_env"]
pytest_plugins += ["tests.peers.taiga_sessions"]
pytest_plugins += ["tests.peers.mcp_clients"]
