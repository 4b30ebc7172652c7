"""What a user's App Home shows: their most recent plans and the projects of the channels they
plan in."""

from __future__ import annotations

from sqlmodel import Session, col, or_, select

from storage.models import ChannelProject, Plan


def recent_plans(session: Session, *, team_id: str, user_id: str, limit: int) -> list[Plan]:
    """The newest `limit` plans the user asked for or decided, newest first."""
    statement = (
        select(Plan)
        .where(
            Plan.slack_team_id == team_id,
            or_(Plan.requester_slack_id == user_id, Plan.decided_by == user_id),
        )
        .order_by(col(Plan.created_at).desc())
        .limit(limit)
    )
    return list(session.exec(statement.execution_options(populate_existing=True)).all())


def projects_of_channels(
    session: Session, *, team_id: str, user_id: str, channel_ids: list[str]
) -> list[ChannelProject]:
    """The projects of these channels and of the channels whose project the user set, by
    channel."""
    statement = (
        select(ChannelProject)
        .where(
            ChannelProject.slack_team_id == team_id,
            or_(
                col(ChannelProject.slack_channel_id).in_(channel_ids),
                ChannelProject.set_by == user_id,
            ),
        )
        .order_by(col(ChannelProject.slack_channel_id))
    )
    return list(session.exec(statement).all())
