"""What keeps the connect page safe in a browser: its response headers, a CSRF check bound to
the link, and access logs that never show a link's token."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from urllib.parse import urlsplit

from bot.connect.page import STYLE_HASH

CSRF_COOKIE = "taiga_connect_csrf"
CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TOKEN_IN_PATH = re.compile(r"(/connect/)[^/?\s\"]+")


def new_csrf(link_token: str) -> str:
    """A per-page CSRF value, signed with the link's own token: `<nonce>.<tag>`. It goes in
    the form's hidden field and in a cookie scoped to the link's path (double submit)."""
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_tag(link_token, nonce)}"


def csrf_ok(link_token: str, *, field: str, cookie: str | None) -> bool:
    """The hidden field equals the cookie, and was made for this link."""
    if not cookie or not hmac.compare_digest(field.encode(), cookie.encode()):
        return False
    nonce, _, tag = field.partition(".")
    return bool(nonce) and hmac.compare_digest(tag.encode(), _tag(link_token, nonce).encode())


def same_origin(origin: str | None, public_url: str) -> bool:
    """A browser's Origin header must be the public URL's origin. Under `Referrer-Policy:
    no-referrer` browsers send `Origin: null` on form posts (and older ones send none): then the
    CSRF cookie alone decides."""
    if origin is None or origin == "null":
        return True
    public = urlsplit(public_url)
    return origin.rstrip("/") == f"{public.scheme}://{public.netloc}"


def _tag(link_token: str, nonce: str) -> str:
    message = f"connect-csrf:{nonce}".encode()
    return hmac.new(link_token.encode(), message, hashlib.sha256).hexdigest()


class RedactConnectTokens(logging.Filter):
    """uvicorn's access log line carries the path: `/connect/<token>` becomes `/connect/…`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_PATH.sub(r"\1…", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _TOKEN_IN_PATH.sub(r"\1…", record.msg)
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactConnectTokens) for f in access.filters):
        access.addFilter(RedactConnectTokens())
