"""Driving the connect page over HTTP in tests: get a link from `/taiga login`, open the page,
post its form with the CSRF value and cookie a browser would send."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import httpx

from bot.connect.security import CSRF_COOKIE
from tests.peers.slack_harness import WAIT, Harness

PUBLIC_URL = "https://planner.example.test"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def connect_link(h: Harness) -> str:
    """`/taiga login` by Alice; the one-time link in the private reply."""
    _, form = await h.command("login")
    posted = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    return link_in(posted.body)


def link_in(message: dict) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == "connect_open":
                return str(element["url"])
    raise AssertionError(f"no connect link in {message}")


def path_of(url: str) -> str:
    return urlsplit(url).path


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


async def submit(
    h: Harness, url: str, page: httpx.Response, *, origin: str = PUBLIC_URL,
    cookie: str | None = None, **fields: str,
) -> httpx.Response:
    """Post the page's form as a browser at `origin` would (the CSRF cookie it was given,
    unless `cookie` says otherwise)."""
    csrf = csrf_of(page)
    sent_cookie = page.cookies.get(CSRF_COOKIE) if cookie is None else cookie
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": origin}
    if sent_cookie:
        headers["cookie"] = f"{CSRF_COOKIE}={sent_cookie}"
    body = urlencode({"csrf": csrf, **fields})
    return await h.http.post(path_of(url), content=body, headers=headers)
