"""Errors as `{"detail": "<plain sentence>"}`: `ApiError`, and the app's handlers that give every
failure (a bad body, an unknown path, an unreachable database) that shape."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.errors import explain_failure
from bot.api.models import RefreshedTokens
from storage.bounded import too_long

log = logging.getLogger(__name__)

NOT_JSON = "The request body is not valid JSON."
NOT_AN_OBJECT = "The request body must be a JSON object."
DATABASE_UNAVAILABLE = "The planner's database is unavailable; try again shortly."
# FastAPI's words for a body it could not even decode (bytes that are not UTF-8).
UNPARSED_BODY = "There was an error parsing the body"


class ApiError(HTTPException):
    """An error answered as `{"detail": "<plain sentence>"}`, plus `extra` fields if any."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.extra = extra or {}

    @classmethod
    def explaining(cls, error: Exception) -> ApiError:
        """`error` worded by `agent.errors.explain_failure`, with its status."""
        explained = explain_failure(error)
        return cls(explained.http_status, explained.api_detail)


def error_response(error: ApiError, tokens: RefreshedTokens | None) -> JSONResponse:
    """`{"detail": ...}`; plus the new token pair if Taiga rotated the caller's refresh token
    during this request (the old one no longer works, so it must not be lost with the error)."""
    content: dict[str, Any] = {"detail": error.detail, **error.extra}
    if tokens is not None:
        content["tokens"] = tokens.model_dump()
    return JSONResponse(content, status_code=error.status_code, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if detail == UNPARSED_BODY:
            detail = NOT_JSON
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_sentence(exc.errors())}, status_code=422)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        refused = too_long(exc)
        if refused is not None:
            return JSONResponse({"detail": refused.sentence}, status_code=422)
        log.error("database error: %s", type(exc).__name__)
        return JSONResponse({"detail": DATABASE_UNAVAILABLE}, status_code=503)


def validation_sentence(errors: Sequence[Any]) -> str:
    """'Invalid request: prompt: Field required; project_id: ...' (never echoes the input), or
    why the body as a whole is unusable."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return NOT_JSON
    if tuple(first.get("loc", ())) == ("body",):  # no body, or one that is not an object
        return NOT_AN_OBJECT
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) + "."
