"""Bolt listeners, one package per Slack surface; each exposes `register(app)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, commands, events, home, views


def register_listeners(app: AsyncApp) -> None:
    commands.register(app)
    events.register(app)
    actions.register(app)
    views.register(app)
    home.register(app)
