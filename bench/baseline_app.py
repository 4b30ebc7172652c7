"""The straightforward design the ack is compared with: a Bolt app whose `/taiga` listener only
acknowledges, behind FastAPI like ours (`uvicorn bench.baseline_app:api`, same settings)."""

from __future__ import annotations

import os

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

bolt = AsyncApp(
    client=AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    ),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    process_before_response=True,
)
handler = AsyncSlackRequestHandler(bolt)
api = FastAPI()


@bolt.command("/taiga")
async def acknowledge(ack: AsyncAck) -> None:
    await ack(text="Planning in a thread.")


@api.post("/slack/events")
async def slack_events(request: Request) -> Response:
    return await handler.handle(request)


@api.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
