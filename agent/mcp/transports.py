"""How the MCP server is reached: stdio for a client that starts it (Claude Desktop, Claude
Code), streamable HTTP at `/mcp` for clients that share one server, each with its own token."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from agent.mcp.identity import MISSING_BEARER, bearer_token

MCP_PATH = "/mcp"


async def serve_stdio(server: Server[Any, Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(server: Server[Any, Any], *, host: str, port: int) -> None:
    config = uvicorn.Config(
        http_app(server, host=host, port=port), host=host, port=port, log_level="warning"
    )
    await uvicorn.Server(config).serve()


def http_app(server: Server[Any, Any], *, host: str, port: int) -> Starlette:
    sessions = StreamableHTTPSessionManager(app=server, security_settings=_security(host, port))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with sessions.run():
            yield

    return Starlette(
        routes=[Route(MCP_PATH, endpoint=_WithBearerToken(sessions))], lifespan=lifespan
    )


class _WithBearerToken:
    """Refuses, with the sentence that says what to send, a request without a Taiga token."""

    def __init__(self, sessions: StreamableHTTPSessionManager) -> None:
        self._sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if bearer_token(Request(scope, receive)) is None:
            refusal = JSONResponse(
                {"error": "unauthorized", "error_description": MISSING_BEARER},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="Taiga"'},
            )
            await refusal(scope, receive, send)
            return
        await self._sessions.handle_request(scope, receive, send)


def _security(host: str, port: int) -> TransportSecuritySettings:
    """On a loopback address, accept only local Host and Origin headers (DNS rebinding); behind
    a proxy on another address, the proxy decides who reaches us."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{h}" for h in hosts],
    )
