"""The connect page's HTML: the sign-in form and the one-line outcomes. No script, one inline
style sheet (allowed by its hash in the Content-Security-Policy), every value escaped."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape
from string import Template

STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5fb;color:#1d1c1d}
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:12px;
box-shadow:0 2px 12px #0002}
h1{font-size:1.4rem;margin:0 0 .5rem}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.55rem;font:inherit;border:1px solid #bbb;
border-radius:6px}
button{margin-top:1.5rem;width:100%;padding:.7rem;font:inherit;font-weight:600;color:#fff;
background:#007a5a;border:0;border-radius:6px;cursor:pointer}
details{margin-top:1rem}
.note{color:#555;font-size:.9rem}
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem .8rem;border-radius:6px}
.done{background:#e6f4ea;color:#0b5a2b;padding:.6rem .8rem;border-radius:6px}
""".strip()
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>$title · Taiga Planner</title>
<style>$style</style>
</head>
<body>
<main>
<h1>$title</h1>
$body
</main>
</body>
</html>
""")

_FORM = Template("""<p class="note">Sign in to <strong>$taiga</strong> to link your Slack account.
Your password is sent once to Taiga to get a token and is never stored; the bot keeps only
Taiga's tokens, encrypted.</p>
$error
<form method="post" action="" autocomplete="on">
<input type="hidden" name="csrf" value="$csrf">
<label for="username">Taiga username or e-mail</label>
<input id="username" name="username" autocomplete="username" value="$username" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<details>
<summary>Use an auth token instead</summary>
<label for="auth_token">Auth token</label>
<input id="auth_token" name="auth_token" autocomplete="off">
<label for="refresh_token">Refresh token (optional, lets the bot renew the token)</label>
<input id="refresh_token" name="refresh_token" autocomplete="off">
</details>
<button type="submit">Connect Taiga</button>
</form>
<p class="note">This link works once and expires 10 minutes after it was sent.</p>""")

NEW_LINK_HINT = (
    "Run /taiga login in Slack, or press Connect Taiga in Taiga Planner's Home tab, to get a "
    "new link."
)


@dataclass(frozen=True, slots=True)
class FormPage:
    csrf: str
    taiga: str
    username: str = ""
    error: str | None = None


def form_page(page: FormPage) -> str:
    error = ""
    if page.error:
        error = f'<p class="error" role="alert" id="error">{escape(page.error)}</p>'
    body = _FORM.substitute(
        taiga=escape(page.taiga), csrf=escape(page.csrf), username=escape(page.username),
        error=error,
    )
    return _html("Connect Taiga", body)


def outcome_page(title: str, sentence: str, *, done: bool = False) -> str:
    """A page of one sentence: the link is linked, used, expired or refused."""
    css = "done" if done else "error"
    return _html(title, f'<p class="{css}" role="status" id="outcome">{escape(sentence)}</p>')


def _html(title: str, body: str) -> str:
    return _PAGE.substitute(title=escape(title), style=STYLE, body=body)
