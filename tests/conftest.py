import pytest

pytest_plugins = ["tests.peers.fake_anthropic"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
