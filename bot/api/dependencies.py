"""Request checks as FastAPI dependencies: the caller's API key (`Authorization: Bearer`) and
the optional `Idempotency-Key` header. Each answers with a plain sentence when it fails."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Annotated

from fastapi import Header, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from bot.api.errors import ApiError

IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")

# auto_error=False: a missing or non-Bearer header gets our own 401 sentence, not FastAPI's.
_bearer = HTTPBearer(auto_error=False, description="One of AGENT_API_KEYS.")


class ApiKey:
    """The configured key the caller sent as `Authorization: Bearer <key>`, else a 401."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._keys = list(keys)

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> str:
        given = credentials.credentials if credentials is not None else ""
        given_digest = hashlib.sha256(given.encode()).digest()
        matched: str | None = None
        for key in self._keys:  # constant time: fixed-length digests, and every key is compared
            plain = key.get_secret_value()
            if hmac.compare_digest(given_digest, hashlib.sha256(plain.encode()).digest()):
                matched = plain
        if not given or matched is None:
            raise ApiError(
                401,
                "Send a valid API key as 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return matched


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            description="Makes a retry safe: the same key (with the same body) finishes the "
            "stored plan or returns its result instead of planning again.",
            json_schema_extra={"minLength": 1, "maxLength": 255},
        ),
    ] = None,
) -> str | None:
    """The request's `Idempotency-Key` as sent (None without one), else a 422."""
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(422, "The Idempotency-Key header must be 1 to 255 visible ASCII characters.")
    return key
