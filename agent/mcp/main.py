"""`python -m agent mcp` (stdio) and `python -m agent mcp --http --port N` (streamable HTTP)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import SecretStr

from agent.mcp.identity import BearerIdentity, EnvironmentIdentity, Identity
from agent.mcp.planner import McpPlanner
from agent.mcp.server import build_server
from agent.mcp.transports import serve_http, serve_stdio
from agent.runtime import Runtime, build_runtime
from agent.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    settings.require("anthropic_api_key")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)  # stdout is the protocol
    try:
        asyncio.run(_serve(args, settings))
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(args: argparse.Namespace, settings: Settings) -> None:
    runtime = build_runtime(settings)
    await asyncio.to_thread(runtime.db.migrate)
    planner = McpPlanner(
        db=runtime.db, settings=settings, anthropic=runtime.anthropic, clock=runtime.clock
    )
    server = build_server(planner, _identity(args, runtime))
    try:
        if args.http:
            print(f"MCP server at http://{args.host}:{args.port}/mcp", file=sys.stderr)
            await serve_http(server, host=args.host, port=args.port)
        else:
            await serve_stdio(server)
    finally:
        await runtime.aclose()


def _identity(args: argparse.Namespace, runtime: Runtime) -> Identity:
    if args.http:
        return BearerIdentity(runtime.taiga)
    return EnvironmentIdentity(
        runtime.taiga,
        auth_token=args.taiga_auth_token,
        refresh_token=args.taiga_refresh_token,
        username=args.taiga_username,
        password=SecretStr(args.taiga_password),
    )
