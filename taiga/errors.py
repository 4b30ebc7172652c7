"""Our exception types for everything Taiga can answer (or fail to answer).

Each carries `.message`, a plain sentence a user may read (the bot shows it), and `.status`,
the HTTP status when there was one. Messages never contain tokens or passwords.
"""

from __future__ import annotations


class TaigaError(Exception):
    """Any failure talking to Taiga."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class BadCredentials(TaigaError):
    """401 invalid_credentials on /auth: wrong username/e-mail or password."""


class Unauthorized(TaigaError):
    """401: the token is missing, invalid or expired, or a refresh was rejected."""


class Forbidden(TaigaError):
    """403: the signed-in user lacks the permission."""


class NotFound(TaigaError):
    """404: no such object, or not visible to this user."""


class ValidationFailed(TaigaError):
    """400: Taiga rejected the request; `.fields` maps field names to messages."""

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        status: int | None = 400,
    ) -> None:
        super().__init__(message, status=status)
        self.fields: dict[str, list[str]] = fields or {}


class RateLimited(TaigaError):
    """429: Taiga is throttling; `.wait_seconds` says how long to wait."""

    def __init__(self, wait_seconds: float, *, status: int | None = 429) -> None:
        shown = int(wait_seconds) if float(wait_seconds).is_integer() else round(wait_seconds, 1)
        super().__init__(f"Taiga is rate-limiting requests; try again in {shown} s.", status=status)
        self.wait_seconds = float(wait_seconds)


class Unavailable(TaigaError):
    """5xx, timeouts, connection errors, or a non-API (HTML) answer."""


class ResponseLost(Unavailable):
    """A write was sent but no response arrived: it may or may not have been applied."""
