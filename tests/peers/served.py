"""The real ASGI app served over HTTP on loopback: uvicorn in this process, on a port the OS
picks, so requests go through a real socket, uvicorn's HTTP parsing and the ASGI app as in
production (the harness's in-memory transport skips those).

    async with serving(h.api) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http: ...
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from fastapi import FastAPI

START_WITHIN = 10.0


@asynccontextmanager
async def serving(
    app: FastAPI, *, sock: socket.socket | None = None, access_log: bool = False
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (an ephemeral port, or the listening `sock` a test made before
    the app existed) until the block ends; yields its base URL.

    The lifespan is off: the test owns the runtime and bot it injected into `app`; logging is
    left as the test run has it (uvicorn's own config would stop its loggers propagating)."""
    sock = sock or socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_config=None, access_log=access_log)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        with anyio.fail_after(START_WITHIN):
            while not server.started:
                if task.done():
                    task.result()  # raises why it could not start
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
