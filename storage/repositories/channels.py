"""Channel projects: the Taiga project a Slack channel plans into by default."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from storage.models import ChannelProject, utcnow
from storage.repositories.inserts import upsert


def set_channel_project(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    project_id: int,
    project_slug: str,
    project_name: str,
    set_by: str,
) -> ChannelProject:
    """Set (or replace) the channel's default project (one race-safe upsert)."""
    changes: dict[str, Any] = {
        "project_id": project_id,
        "project_slug": project_slug,
        "project_name": project_name,
        "set_by": set_by,
        "updated_at": utcnow(),
    }
    upsert(
        session,
        ChannelProject(slack_team_id=team_id, slack_channel_id=channel_id, **changes),
        key=["slack_team_id", "slack_channel_id"],
        changes=changes,
    )
    row = get_channel_project(session, team_id=team_id, channel_id=channel_id)
    assert row is not None
    return row


def get_channel_project(
    session: Session, *, team_id: str, channel_id: str
) -> ChannelProject | None:
    return session.get(ChannelProject, (team_id, channel_id), populate_existing=True)
