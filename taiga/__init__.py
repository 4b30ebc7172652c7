"""Async Taiga REST client: typed models, our error types, retries and token refresh."""

from __future__ import annotations

from taiga.client import RefreshHook, TaigaClient, TaigaSession
from taiga.clock import Clock, SystemClock
from taiga.errors import (
    BadCredentials,
    Forbidden,
    NotFound,
    RateLimited,
    ResponseLost,
    TaigaError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from taiga.links import sprint_url, story_url, task_url
from taiga.models import (
    AuthResult,
    Member,
    Milestone,
    MilestoneRef,
    Project,
    TaigaTokens,
    TaigaUser,
    Task,
    UserStory,
)

__all__ = [
    "AuthResult",
    "BadCredentials",
    "Clock",
    "Forbidden",
    "Member",
    "Milestone",
    "MilestoneRef",
    "NotFound",
    "Project",
    "RateLimited",
    "RefreshHook",
    "ResponseLost",
    "SystemClock",
    "TaigaClient",
    "TaigaError",
    "TaigaSession",
    "TaigaTokens",
    "TaigaUser",
    "Task",
    "Unauthorized",
    "Unavailable",
    "UserStory",
    "ValidationFailed",
    "sprint_url",
    "story_url",
    "task_url",
]
