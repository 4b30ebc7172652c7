"""Reading Taiga's HTTP answers: a body, a model, or the matching exception from `taiga.errors`.

Pure functions of one `httpx.Response`; no sending, no retrying (that is `taiga.client`).
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from taiga.errors import (
    BadCredentials,
    Forbidden,
    NotFound,
    RateLimited,
    TaigaError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_DEFAULT_THROTTLE_WAIT = 60.0


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?" else text + "."


def _body(response: httpx.Response) -> Any:
    """The JSON body, or None when it is not JSON (e.g. Django's HTML error pages)."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _field_messages(body: dict[str, Any]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in body.items():
        if name.startswith("_error"):
            continue
        if isinstance(value, list):
            fields[name] = [str(item) for item in value]
        else:
            fields[name] = [str(value)]
    return fields


def _taiga_words(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        inner = messages[0].get("message")
        if isinstance(inner, str) and inner:
            return inner
    for key in ("_error_message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def throttle_wait(response: httpx.Response) -> float:
    """Seconds a 429 asks us to wait: its header, else the number in Taiga's message."""
    for header in ("x-throttle-wait-seconds", "retry-after"):
        value = response.headers.get(header)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    match = re.search(r"available in (\d+(?:\.\d+)?) second", _taiga_words(_body(response)))
    return float(match.group(1)) + 1 if match else _DEFAULT_THROTTLE_WAIT


def error_for(response: httpx.Response, *, not_found: str | None = None) -> TaigaError:
    """Translate a non-2xx Taiga response into one of our exceptions."""
    status = response.status_code
    body = _body(response)
    words = _taiga_words(body)
    if status == 429:
        return RateLimited(throttle_wait(response))
    if status >= 500:
        return Unavailable(
            f"Taiga is having trouble (HTTP {status}); try again in a moment.", status=status
        )
    if body is None:
        return Unavailable(
            f"Taiga answered HTTP {status} with a web page instead of API data; check that the "
            "Taiga API URL is right (it usually ends in /api/v1).",
            status=status,
        )
    if status == 400:
        fields = _field_messages(body) if isinstance(body, dict) else {}
        detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
        return ValidationFailed(
            _sentence(f"Taiga rejected the request: {detail or words or 'invalid data'}"),
            fields=fields,
        )
    if status == 401:
        if isinstance(body, dict) and body.get("code") == "invalid_credentials":
            return BadCredentials(
                _sentence(words or "Taiga did not accept that username and password"), status=401
            )
        if isinstance(body, dict) and body.get("code") == "token_not_valid":
            return Unauthorized(
                f"Your Taiga sign-in is no longer valid ({_sentence(words)[:-1] or 'expired'}).",
                status=401,
            )
        return Unauthorized(
            _sentence(f"Taiga needs you to sign in: {words or 'no credentials were sent'}"),
            status=401,
        )
    if status == 403:
        return Forbidden(
            _sentence(words or "You do not have permission to do that in Taiga"), status=403
        )
    if status == 404:
        return NotFound(_sentence(not_found or words or "Taiga could not find that"), status=404)
    return TaigaError(_sentence(words or f"Taiga answered HTTP {status}"), status=status)


def token_rejected(response: httpx.Response) -> bool:
    """A 401 for an expired or invalid JWT (`token_not_valid`), which a refresh can cure; not
    Taiga's NotAuthenticated (no bearer token arrived) nor a proxy's own 401."""
    if response.status_code != 401:
        return False
    body = _body(response)
    return isinstance(body, dict) and body.get("code") == "token_not_valid"


def success_json(response: httpx.Response, *, not_found: str | None = None) -> Any:
    """The body of a 2xx response, or the matching exception."""
    if not response.is_success:
        raise error_for(response, not_found=not_found)
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise Unavailable(
            "Taiga sent a response that is not JSON; check the Taiga API URL.",
            status=response.status_code,
        ) from exc


def parse_as(model: type[M], data: Any) -> M:
    """The body as `model`, or our error. Pydantic's error echoes the input (an /auth body holds
    the tokens), so it is not chained; only the failing fields are logged, never their values."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(body)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        log.warning("taiga sent a %s we cannot parse (%s)", model.__name__, problems)
    raise TaigaError(
        f"Taiga sent a {model.__name__} this bot does not understand; "
        "is the Taiga version supported?"
    )
