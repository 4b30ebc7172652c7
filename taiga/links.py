"""Links into Taiga's web UI (not the API)."""

from __future__ import annotations

from urllib.parse import quote


def _base(web_url: str, slug: str) -> str:
    return f"{web_url.rstrip('/')}/project/{quote(slug, safe='')}"


def project_url(web_url: str, slug: str) -> str:
    return _base(web_url, slug)


def story_url(web_url: str, slug: str, ref: int) -> str:
    return f"{_base(web_url, slug)}/us/{ref}"


def task_url(web_url: str, slug: str, ref: int) -> str:
    return f"{_base(web_url, slug)}/task/{ref}"


def sprint_url(web_url: str, slug: str, milestone_slug: str) -> str:
    return f"{_base(web_url, slug)}/taskboard/{quote(milestone_slug, safe='')}"
