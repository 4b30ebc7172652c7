"""A fake Taiga (taiga-back 6.7.3): a real HTTP server on 127.0.0.1 serving `/api/v1`.

It answers like the recorded exchanges in `tests/taiga_samples/` (status codes, body key sets,
pagination and throttling headers, both 401 shapes, Django's HTML 404 for unknown paths).

    def test_something(fake_taiga: FakeTaiga) -> None:      # seeded like the recording
        client = TaigaClient(fake_taiga.api_url)
        tokens = TaigaTokens(**fake_taiga.login_tokens("alice"))
        ...
        assert fake_taiga.stories(PROJECT_ID)[-1]["subject"] == "New story"
        assert fake_taiga.requests[-1].path == "/userstories"

State (ids as in the recording; see `seed_recorded`):
  users: admin (5, superuser, not a member of project 1), alice (6, owner of project 1, all 40
  permissions), bob (7, "Viewer": the 8 view permissions); passwords admin123 / alice123 / bob12345.
  project 1 `alice-peer-client-test`; project 2 `admin-admin-private` (invisible to alice and bob).
  Sprint 5 (id 1) and Sprint 6 (id 2); user stories 1-7 and tasks 1-4 (refs 8-11): stories and
  tasks share one `ref` sequence per project.

Lifecycle: the `fake_taiga` fixture (function-scoped, seeded, running); or `FakeTaiga()`,
`.seed_recorded()`, `with fake.running(): ...`. URLs: `.api_url` (http://127.0.0.1:PORT/api/v1),
`.origin`. Constants: ADMIN_ID, ALICE_ID, BOB_ID, PROJECT_ID, PROJECT_SLUG, OTHER_PROJECT_ID,
SPRINT5_ID, SPRINT6_ID, VIEWER_ROLE_ID, PASSWORDS, VIEW_PERMISSIONS, ALL_PERMISSIONS.

Helpers (all thread-safe):
  building:  add_user, add_project, add_role, add_member, add_milestone, add_story, add_task,
             edit(kind, id, **fields)  (a person's change: `version` + 1)
  reading:   stories(project_id), tasks(project_id), milestones(project_id), user(username),
             requests (list[RecordedRequest]), requests_to(method, path), clear_requests()
  tokens:    login_tokens(username) -> {"auth_token", "refresh"}; issued_tokens();
             expire_access_tokens(username);
             expire_refresh_tokens(username)
  faults:    set_latency(seconds); fail_next(status, nth=, times=, method=, path=);
             throttle_next(count, wait_seconds=, method=, path=);
             throttle_above(in_flight, wait_seconds=);
             lose_next_response(method=, path=)  (the write IS applied, then the socket closes);
             expire_tokens_after(username, nth=, refresh_too=, method=, path=)  (mid-apply);
             hold_next_response(method=, path=, nth=) -> Hold  (applied, answered on release);
             limit_login_failures(count, wait_seconds=)  (the `login-fail` scope); clear_faults()
`path` filters are shell-style globs on the path after `/api/v1`, e.g. "/userstories*".
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import math
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tests.peers.holds import Hold

API_PREFIX = "/api/v1"
# Taiga builds X-Pagination-Next/Prev from its own host; a client must never follow them.
BACKEND_ORIGIN = "http://taiga-back.internal"

ADMIN_ID, ALICE_ID, BOB_ID = 5, 6, 7
PROJECT_ID, PROJECT_SLUG = 1, "alice-peer-client-test"
OTHER_PROJECT_ID, OTHER_PROJECT_SLUG = 2, "admin-admin-private"
SPRINT5_ID, SPRINT6_ID = 1, 2
VIEWER_ROLE_ID = 7
PASSWORDS = {"admin": "admin123", "alice": "alice123", "bob": "bob12345"}

ALL_PERMISSIONS = (
    "view_project", "modify_project", "delete_project", "admin_project_values", "admin_roles",
    "add_member", "remove_member",
    "view_milestones", "add_milestone", "modify_milestone", "delete_milestone",
    "view_us", "add_us", "modify_us", "delete_us", "comment_us",
    "view_tasks", "add_task", "modify_task", "delete_task", "comment_task",
    "view_issues", "add_issue", "modify_issue", "delete_issue", "comment_issue",
    "view_epics", "add_epic", "modify_epic", "delete_epic", "comment_epic",
    "view_wiki_pages", "add_wiki_page", "modify_wiki_page", "delete_wiki_page",
    "comment_wiki_page",
    "view_wiki_links", "add_wiki_link", "modify_wiki_link", "delete_wiki_link",
)  # fmt: skip
VIEW_PERMISSIONS = (
    "view_project", "view_milestones", "view_us", "view_tasks",
    "view_issues", "view_epics", "view_wiki_pages", "view_wiki_links",
)  # fmt: skip
MEMBER_PERMISSIONS = (
    "add_issue", "modify_issue", "delete_issue", "view_issues",
    "add_milestone", "modify_milestone", "delete_milestone", "view_milestones", "view_project",
    "add_task", "modify_task", "delete_task", "view_tasks",
    "add_us", "modify_us", "delete_us", "view_us",
    "add_wiki_page", "modify_wiki_page", "delete_wiki_page", "view_wiki_pages",
    "add_wiki_link", "delete_wiki_link", "view_wiki_links",
    "view_epics", "add_epic", "modify_epic", "delete_epic",
    "comment_epic", "comment_us", "comment_task", "comment_issue", "comment_wiki_page",
)  # fmt: skip
STAKEHOLDER_PERMISSIONS = (
    "add_issue", "modify_issue", "delete_issue", "view_issues", "view_milestones",
    "view_project", "view_tasks", "view_us", "modify_wiki_page", "view_wiki_pages",
    "add_wiki_link", "delete_wiki_link", "view_wiki_links", "view_epics",
    "comment_epic", "comment_us", "comment_task", "comment_issue", "comment_wiki_page",
)  # fmt: skip
DEFAULT_ROLES = (
    ("UX", 10, True, MEMBER_PERMISSIONS),
    ("Design", 20, True, MEMBER_PERMISSIONS),
    ("Front", 30, True, MEMBER_PERMISSIONS),
    ("Back", 40, True, MEMBER_PERMISSIONS),
    ("Product Owner", 50, False, MEMBER_PERMISSIONS),
    ("Stakeholder", 60, False, STAKEHOLDER_PERMISSIONS),
)

PAGINATE_BY, MAX_PAGINATE_BY = 30, 1000
LOGIN_PATHS = frozenset({"/auth", "/auth/refresh"})  # the `login-fail` throttle scope
BAD_PAGE = "Page is not 'last', nor can it be converted to an int."
REQUIRED = "This field is required."

NOT_AUTHENTICATED = {
    "_error_message": "Authentication credentials were not provided.",
    "_error_type": "taiga.base.exceptions.NotAuthenticated",
}
PERMISSION_DENIED = {
    "_error_message": "You do not have permission to perform this action.",
    "_error_type": "taiga.base.exceptions.PermissionDenied",
}
THROTTLED = {
    "_error_message": "Request was throttled.Expected available in {wait} seconds.",
    "_error_type": "taiga.base.exceptions.Throttled",
}
HTML_404 = (
    '\n<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    "</body>\n</html>\n"
)
HTML_5XX = (
    "<html><head><title>{status} {reason}</title></head><body><h1>{reason}</h1></body></html>"
)
EXPOSE_HEADERS = (
    "x-pagination-count,x-paginated,x-paginated-by,x-pagination-current,x-pagination-next,"
    "x-pagination-prev,x-site-host,x-site-register,taiga-info-total-opened-milestones,"
    "taiga-info-total-closed-milestones,taiga-info-backlog-total-userstories,"
    "taiga-info-userstories-without-swimlane,taiga-info-project-memberships,"
    "taiga-info-project-is-private,taiga-info-order-updated"
)
# Project-detail keys only admins see, and keys the project *list* leaves out.
ADMIN_ONLY_PROJECT_KEYS = frozenset(
    {
        "epics_csv_uuid", "userstories_csv_uuid", "tasks_csv_uuid", "issues_csv_uuid",
        "is_private_extra_info", "transfer_token", "max_memberships",
    }
)  # fmt: skip
PROJECT_LIST_OMITS = ADMIN_ONLY_PROJECT_KEYS | {
    "epic_statuses", "us_statuses", "us_duedates", "points", "task_statuses", "task_duedates",
    "issue_statuses", "issue_types", "issue_duedates", "priorities", "severities", "swimlanes",
    "epic_custom_attributes", "userstory_custom_attributes", "task_custom_attributes",
    "issue_custom_attributes", "roles", "total_memberships", "is_out_of_owner_limits",
    "milestones",
}  # fmt: skip


def timestamp(moment: datetime | None = None) -> str:
    """Taiga's datetime format: `2026-11-24T10:55:11.945Z`."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _order_value() -> int:
    return time.time_ns() // 1000


# Per-project values of the scrum template, as in the recorded project detail (plus project_id).
PROJECT_VALUES: dict[str, list[dict[str, Any]]] = json.loads(
    '{"epic_statuses":[{"id":1,"name":"New","slug":"new","order":1,"is_closed":false,"color":'
    '"#70728F"},{"id":2,"name":"Ready","slug":"ready","order":2,"is_closed":false,"color":"#E'
    '44057"},{"id":3,"name":"In progress","slug":"in-progress","order":3,"is_closed":false,"c'
    'olor":"#E47C40"},{"id":4,"name":"Ready for test","slug":"ready-for-test","order":4,"is_c'
    'losed":false,"color":"#E4CE40"},{"id":5,"name":"Done","slug":"done","order":5,"is_closed'
    '":true,"color":"#A8E440"}],"us_statuses":[{"id":1,"name":"New","order":1,"is_closed":fal'
    'se,"color":"#70728F","wip_limit":null,"slug":"new","is_archived":false},{"id":2,"name":"'
    'Ready","order":2,"is_closed":false,"color":"#E44057","wip_limit":null,"slug":"ready","is'
    '_archived":false},{"id":3,"name":"In progress","order":3,"is_closed":false,"color":"#E47'
    'C40","wip_limit":null,"slug":"in-progress","is_archived":false},{"id":4,"name":"Ready fo'
    'r test","order":4,"is_closed":false,"color":"#E4CE40","wip_limit":null,"slug":"ready-for'
    '-test","is_archived":false},{"id":5,"name":"Done","order":5,"is_closed":true,"color":"#A'
    '8E440","wip_limit":null,"slug":"done","is_archived":false},{"id":6,"name":"Archived","or'
    'der":6,"is_closed":true,"color":"#A9AABC","wip_limit":null,"slug":"archived","is_archive'
    'd":true}],"us_duedates":[{"id":1,"name":"Default","order":1,"by_default":true,"color":"#'
    '9dce0a","days_to_due":null},{"id":2,"name":"Due soon","order":2,"by_default":false,"colo'
    'r":"#ff9900","days_to_due":14},{"id":3,"name":"Past due","order":3,"by_default":false,"c'
    'olor":"#E44057","days_to_due":0}],"points":[{"id":1,"name":"?","order":1,"value":null},{'
    '"id":2,"name":"0","order":2,"value":0},{"id":3,"name":"1/2","order":3,"value":0.5},{"id"'
    ':4,"name":"1","order":4,"value":1},{"id":5,"name":"2","order":5,"value":2},{"id":6,"name'
    '":"3","order":6,"value":3},{"id":7,"name":"5","order":7,"value":5},{"id":8,"name":"8","o'
    'rder":8,"value":8},{"id":9,"name":"10","order":9,"value":10},{"id":10,"name":"13","order'
    '":10,"value":13},{"id":11,"name":"20","order":11,"value":20},{"id":12,"name":"40","order'
    '":12,"value":40}],"task_statuses":[{"id":1,"name":"New","order":1,"is_closed":false,"col'
    'or":"#70728F","slug":"new"},{"id":2,"name":"In progress","order":2,"is_closed":false,"co'
    'lor":"#E47C40","slug":"in-progress"},{"id":3,"name":"Ready for test","order":3,"is_close'
    'd":false,"color":"#E4CE40","slug":"ready-for-test"},{"id":4,"name":"Closed","order":4,"i'
    's_closed":true,"color":"#A8E440","slug":"closed"},{"id":5,"name":"Needs Info","order":5,'
    '"is_closed":false,"color":"#5178D3","slug":"needs-info"}],"task_duedates":[{"id":1,"name'
    '":"Default","order":1,"by_default":true,"color":"#9dce0a","days_to_due":null},{"id":2,"n'
    'ame":"Due soon","order":2,"by_default":false,"color":"#ff9900","days_to_due":14},{"id":3'
    ',"name":"Past due","order":3,"by_default":false,"color":"#E44057","days_to_due":0}],"iss'
    'ue_statuses":[{"id":1,"name":"New","order":1,"is_closed":false,"color":"#70728F","slug":'
    '"new"},{"id":2,"name":"In progress","order":2,"is_closed":false,"color":"#40A8E4","slug"'
    ':"in-progress"},{"id":3,"name":"Ready for test","order":3,"is_closed":false,"color":"#E4'
    'CE40","slug":"ready-for-test"},{"id":4,"name":"Closed","order":4,"is_closed":true,"color'
    '":"#A8E440","slug":"closed"},{"id":5,"name":"Needs Info","order":5,"is_closed":false,"co'
    'lor":"#E44057","slug":"needs-info"},{"id":6,"name":"Rejected","order":6,"is_closed":true'
    ',"color":"#A9AABC","slug":"rejected"},{"id":7,"name":"Postponed","order":7,"is_closed":f'
    'alse,"color":"#5178D3","slug":"postponed"}],"issue_types":[{"id":1,"name":"Bug","order":'
    '1,"color":"#E44057"},{"id":2,"name":"Question","order":2,"color":"#5178D3"},{"id":3,"nam'
    'e":"Enhancement","order":3,"color":"#40E4CE"}],"issue_duedates":[{"id":1,"name":"Default'
    '","order":1,"by_default":true,"color":"#9dce0a","days_to_due":null},{"id":2,"name":"Due '
    'soon","order":2,"by_default":false,"color":"#ff9900","days_to_due":14},{"id":3,"name":"P'
    'ast due","order":3,"by_default":false,"color":"#E44057","days_to_due":0}],"priorities":['
    '{"id":1,"name":"Low","order":1,"color":"#A8E440"},{"id":2,"name":"Normal","order":3,"col'
    'or":"#E4CE40"},{"id":3,"name":"High","order":5,"color":"#E47C40"}],"severities":[{"id":1'
    ',"name":"Wishlist","order":1,"color":"#70728F"},{"id":2,"name":"Minor","order":2,"color"'
    ':"#40A8E4"},{"id":3,"name":"Normal","order":3,"color":"#40E47C"},{"id":4,"name":"Importa'
    'nt","order":4,"color":"#E4A240"},{"id":5,"name":"Critical","order":5,"color":"#D35450"}]'
    "}"
)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # after /api/v1 (the raw path if it lacks that prefix)
    query: dict[str, str]  # last value of each parameter
    headers: dict[str, str]  # lower-cased names
    json: Any  # parsed JSON body, None when absent or malformed
    body: bytes

    @property
    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme == "Bearer" else None


@dataclass
class _User:
    id: int
    username: str
    password: str
    full_name: str
    email: str
    is_superuser: bool = False
    color: str = "#70728F"
    gravatar_id: str = ""
    uuid: str = field(default_factory=lambda: secrets.token_hex(16))
    date_joined: str = field(default_factory=timestamp)
    verified_email: bool = True
    read_new_terms: bool = False


@dataclass
class _Role:
    id: int
    project: int
    name: str
    permissions: list[str]
    order: int = 10
    computable: bool = False

    @property
    def slug(self) -> str:
        return slugify(self.name)


@dataclass
class _Membership:
    id: int
    project: int
    user: int
    role: int
    is_admin: bool
    created_at: str = field(default_factory=timestamp)


@dataclass
class _Project:
    id: int
    name: str
    slug: str
    description: str
    is_private: bool
    owner: int
    created_date: str = field(default_factory=timestamp)
    modified_date: str = field(default_factory=timestamp)
    refs: Iterator[int] = field(default_factory=lambda: itertools.count(1))


class _Reply(Exception):
    def __init__(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        html: str | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.html = html


@dataclass
class _Fault:
    kind: str  # "fail" | "throttle" | "lose" | "expire" | "hold"
    method: str | None
    path: str | None
    skip: int = 0
    count: int = 1
    status: int = 500
    wait: float = 60.0
    username: str = ""  # "expire": whose tokens
    refresh_too: bool = False
    hold: Hold | None = None

    def matches(self, request: RecordedRequest) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return self.path is None or fnmatch.fnmatchcase(request.path, self.path)


_LOSE = object()


# --------------------------------------------------------------------------- the fake


class FakeTaiga:
    """In-memory Taiga behind a real loopback HTTP server. Start with `running()`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids: dict[str, Iterator[int]] = {}
        self._users: dict[int, _User] = {}
        self._projects: dict[int, _Project] = {}
        self._roles: dict[int, _Role] = {}
        self._memberships: dict[int, _Membership] = {}
        self._milestones: dict[int, dict[str, Any]] = {}
        self._stories: dict[int, dict[str, Any]] = {}
        self._tasks: dict[int, dict[str, Any]] = {}
        self._access: dict[str, tuple[int, bool]] = {}  # token -> (user id, expired)
        self._refresh: dict[str, tuple[int, bool]] = {}  # token -> (user id, used/expired)
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._latency = 0.0
        self._in_flight = 0
        self._max_in_flight: int | None = None
        self._crowded_wait = 1.0
        self._login_fail_limit: int | None = None
        self._login_fail_wait = 60.0
        self._login_failures = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeTaiga]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def start(self) -> None:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        server = _Server(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-taiga",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def origin(self) -> str:
        assert self._server is not None, "the fake is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """Base URL for `TaigaClient`, e.g. http://127.0.0.1:PORT/api/v1."""
        return self.origin + API_PREFIX

    # -- building state

    def _next_id(self, kind: str, at_least: int = 1) -> int:
        counter = self._ids.setdefault(kind, itertools.count(at_least))
        return next(counter)

    def _claim_id(self, kind: str, chosen: int | None) -> int:
        """`chosen` (or the next id of `kind`), which later generated ids stay above."""
        used = chosen if chosen is not None else self._next_id(kind)
        self._bump(kind, used)
        return used

    def _bump(self, kind: str, used: int) -> None:
        """Make the next generated id of `kind` larger than an explicitly chosen one."""
        current = self._ids.get(kind)
        peek = next(current) if current else 1
        self._ids[kind] = itertools.count(max(peek, used + 1))

    def add_user(
        self,
        username: str,
        password: str,
        *,
        full_name: str | None = None,
        email: str | None = None,
        is_superuser: bool = False,
        user_id: int | None = None,
        color: str = "#70728F",
        gravatar_id: str = "",
    ) -> int:
        with self._lock:
            uid = self._claim_id("user", user_id)
            self._users[uid] = _User(
                id=uid,
                username=username,
                password=password,
                full_name=full_name or username.title(),
                email=email or f"{username}@example.com",
                is_superuser=is_superuser,
                color=color,
                gravatar_id=gravatar_id or secrets.token_hex(16),
            )
            return uid

    def add_project(
        self,
        name: str,
        *,
        owner: str,
        slug: str | None = None,
        description: str = "",
        is_private: bool = True,
        project_id: int | None = None,
        owner_role: str = "Product Owner",
    ) -> int:
        """A project with Taiga's scrum-template roles; the owner joins as an admin member."""
        with self._lock:
            owner_user = self.user(owner)
            pid = self._claim_id("project", project_id)
            self._projects[pid] = _Project(
                id=pid,
                name=name,
                slug=slug or f"{owner_user.username}-{slugify(name)}",
                description=description,
                is_private=is_private,
                owner=owner_user.id,
            )
            for role_name, order, computable, permissions in DEFAULT_ROLES:
                self.add_role(pid, role_name, permissions, order=order, computable=computable)
            self.add_member(pid, owner, owner_role, is_admin=True)
            return pid

    def add_role(
        self,
        project_id: int,
        name: str,
        permissions: tuple[str, ...] | list[str],
        *,
        order: int = 10,
        computable: bool = False,
        role_id: int | None = None,
    ) -> int:
        with self._lock:
            rid = self._claim_id("role", role_id)
            self._roles[rid] = _Role(rid, project_id, name, list(permissions), order, computable)
            return rid

    def add_member(
        self, project_id: int, username: str, role: str | int, *, is_admin: bool = False
    ) -> int:
        """Make `username` a member of the project with the role (name or id)."""
        with self._lock:
            user = self.user(username)
            role_obj = self._role(project_id, role)
            mid = self._next_id("membership")
            self._memberships[mid] = _Membership(mid, project_id, user.id, role_obj.id, is_admin)
            return mid

    def add_milestone(
        self,
        project_id: int,
        name: str,
        start: date | str,
        finish: date | str,
        *,
        closed: bool = False,
        owner: str | None = None,
        milestone_id: int | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            project = self._projects[project_id]
            mid = self._claim_id("milestone", milestone_id)
            now = timestamp()
            self._milestones[mid] = {
                "id": mid,
                "project": project_id,
                "name": name,
                "slug": self._milestone_slug(project_id, name),
                "owner": self.user(owner).id if owner else project.owner,
                "estimated_start": str(start),
                "estimated_finish": str(finish),
                "closed": closed,
                "created_date": now,
                "modified_date": now,
                "order": 1,
            }
            return self._milestone_body(self._milestones[mid], detail=True)

    def add_story(
        self,
        project_id: int,
        subject: str,
        *,
        milestone_id: int | None = None,
        description: str = "",
        tags: list[str] | tuple[str, ...] = (),
        owner: str | None = None,
        external_reference: list[str] | None = None,
        story_id: int | None = None,
    ) -> dict[str, Any]:
        """Create a user story directly (no HTTP); returns its API body."""
        with self._lock:
            owner_id = self._owner_id(project_id, owner)
            story = self._create_story(
                project_id, subject, owner_id, milestone_id, description, tags, story_id
            )
            story["external_reference"] = external_reference
            return self._story_body(story, detail=True)

    def add_task(
        self,
        project_id: int,
        subject: str,
        *,
        user_story_id: int | None = None,
        milestone_id: int | None = None,
        description: str = "",
        owner: str | None = None,
        task_id: int | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            owner_id = self._owner_id(project_id, owner)
            task = self._create_task(
                project_id, subject, owner_id, user_story_id, milestone_id, description,
                item_id=task_id,
            )  # fmt: skip
            return self._task_body(task, detail=True)

    def edit(self, kind: str, item_id: int, **fields: Any) -> dict[str, Any]:
        """Change a story or task as a person would in Taiga (its `version` goes up by one)."""
        with self._lock:
            item = (self._stories if kind == "story" else self._tasks)[item_id]
            item.update(fields)
            self._bump_version(item, set(fields))
            if kind == "story":
                return self._story_body(item, detail=True)
            return self._task_body(item, detail=True)

    def _owner_id(self, project_id: int, owner: str | None) -> int:
        """The named user, or else the project's owner."""
        return self.user(owner).id if owner else self._projects[project_id].owner

    def seed_recorded(self) -> None:
        """Reproduce the data the samples were recorded against (ids included)."""
        with self._lock:
            self.add_user(
                "admin", PASSWORDS["admin"], full_name="Admin User", is_superuser=True,
                user_id=ADMIN_ID, color="#2e0ae3", gravatar_id="e64c7d89f26bd1972efa854d13d7dd61",
            )  # fmt: skip
            self.add_user(
                "alice", PASSWORDS["alice"], full_name="Alice Owner", user_id=ALICE_ID,
                color="#129363", gravatar_id="c160f8cc69a4f0bf2b0362752353d060",
            )  # fmt: skip
            self.add_user(
                "bob", PASSWORDS["bob"], full_name="Bob Viewer", user_id=BOB_ID,
                color="#494405", gravatar_id="4b9bb80620f03eb3719e0a061c14283d",
            )  # fmt: skip
            self._users[BOB_ID].verified_email = False
            self._users[BOB_ID].read_new_terms = True
            self.add_project(
                "Peer Client Test", owner="alice", slug=PROJECT_SLUG,
                description="Project for API client tests", project_id=PROJECT_ID,
            )  # fmt: skip
            self.add_role(PROJECT_ID, "Viewer", VIEW_PERMISSIONS, role_id=VIEWER_ROLE_ID)
            self.add_member(PROJECT_ID, "bob", VIEWER_ROLE_ID)
            self.add_milestone(PROJECT_ID, "Sprint 5", "2024-05-01", "2024-05-14", milestone_id=1)
            self.add_milestone(PROJECT_ID, "Sprint 6", "2024-05-15", "2024-05-28", milestone_id=2)
            self.add_story(
                PROJECT_ID, "As a user I can log in", milestone_id=SPRINT5_ID,
                description="Login story", tags=["auth", "p1"],
            )  # fmt: skip
            self.add_story(PROJECT_ID, "As a user I can log out", milestone_id=SPRINT5_ID)
            self.add_story(PROJECT_ID, "Export report", milestone_id=SPRINT6_ID)
            for subject in ("Bulk story one", "Bulk story two", "Bulk story three"):
                self.add_story(PROJECT_ID, subject)
            self.add_story(PROJECT_ID, "Bulk into sprint 6?", milestone_id=SPRINT6_ID)
            for subject, story in (
                ("Write login form", 1),
                ("Backend endpoint", 1),
                ("Unit tests", 1),
                ("Sprint-level task", None),
            ):
                self.add_task(PROJECT_ID, subject, user_story_id=story, milestone_id=SPRINT5_ID)
            self.add_project(
                "Admin Private", owner="admin", slug=OTHER_PROJECT_SLUG,
                description="private project bob is not a member of", project_id=OTHER_PROJECT_ID,
            )  # fmt: skip

    # -- reading state (API-shaped copies)

    def user(self, username: str) -> _User:
        with self._lock:
            for user in self._users.values():
                if user.username == username:
                    return user
        raise KeyError(f"no fake Taiga user {username!r}")

    def stories(self, project_id: int) -> list[dict[str, Any]]:
        """Every user story of the project (detail bodies), by id."""
        with self._lock:
            rows = _of_projects(self._stories, {project_id})
            return [self._story_body(s, detail=True) for s in rows]

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = _of_projects(self._tasks, {project_id})
            return [self._task_body(t, detail=True) for t in rows]

    def milestones(self, project_id: int) -> list[dict[str, Any]]:
        """The project's sprints as GET /milestones lists them (newest first)."""
        with self._lock:
            return [
                self._milestone_body(m, detail=True) for m in self._project_milestones(project_id)
            ]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path matches the glob."""
        return [
            r
            for r in self.requests
            if r.method == method.upper() and fnmatch.fnmatchcase(r.path, path)
        ]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- tokens

    def login_tokens(self, username: str) -> dict[str, str]:
        """Fresh tokens as POST /auth would issue: {"auth_token": ..., "refresh": ...}."""
        with self._lock:
            return self._issue(self.user(username).id)

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token issued so far (for leak searches)."""
        with self._lock:
            return [*self._access, *self._refresh]

    def expire_access_tokens(self, username: str) -> None:
        """Every access token issued so far to the user stops working (refresh still works)."""
        self._expire(self._access, username)

    def expire_refresh_tokens(self, username: str) -> None:
        self._expire(self._refresh, username)

    def _expire(self, tokens: dict[str, tuple[int, bool]], username: str) -> None:
        with self._lock:
            uid = self.user(username).id
            for token, (owner, _) in list(tokens.items()):
                if owner == uid:
                    tokens[token] = (owner, True)

    def _issue(self, user_id: int) -> dict[str, str]:
        access = f"fake-access.{user_id}.{secrets.token_urlsafe(24)}"
        refresh = f"fake-refresh.{user_id}.{secrets.token_urlsafe(24)}"
        self._access[access] = (user_id, False)
        self._refresh[refresh] = (user_id, False)
        return {"auth_token": access, "refresh": refresh}

    # -- faults

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by `seconds` (server-side)."""
        with self._lock:
            self._latency = seconds

    def fail_next(
        self,
        status: int = 503,
        *,
        nth: int = 1,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """The `nth` matching request from now (and the `times - 1` after it) get an HTML 5xx;
        nothing is applied."""
        with self._lock:
            self._faults.append(_Fault("fail", method, path, nth - 1, times, status=status))

    def throttle_next(
        self,
        count: int = 1,
        *,
        wait_seconds: float = 60,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next `count` matching requests get 429 with `X-Throttle-Wait-Seconds`."""
        with self._lock:
            self._faults.append(_Fault("throttle", method, path, 0, count, wait=wait_seconds))

    def throttle_above(self, in_flight: int, *, wait_seconds: float = 1.0) -> None:
        """Like Taiga behind a rate-limiting proxy: a request that arrives while `in_flight`
        others are being handled gets 429 (after the latency), until `clear_faults()`."""
        with self._lock:
            self._max_in_flight, self._crowded_wait = in_flight, wait_seconds

    def lose_next_response(self, *, method: str | None = "POST", path: str | None = None) -> None:
        """The next matching request is applied, then the connection closes with no answer."""
        with self._lock:
            self._faults.append(_Fault("lose", method, path))

    def expire_tokens_after(
        self,
        username: str,
        *,
        nth: int = 1,
        refresh_too: bool = False,
        method: str | None = "POST",
        path: str | None = None,
    ) -> None:
        """Once the `nth` matching request from now has been answered, the user's access tokens
        expire (and their refresh tokens too with `refresh_too`): a token expiring mid-apply."""
        with self._lock:
            self._faults.append(_Fault("expire", method, path, nth - 1, username=username,
                                       refresh_too=refresh_too))
    def hold_next_response(
        self, *, method: str | None = "POST", path: str | None = None, nth: int = 1
    ) -> Hold:
        """The `nth` matching request from now is applied, and its answer is held until the
        returned `Hold` is released: its sender has sent it and not yet heard back."""
        hold = Hold()
        with self._lock:
            self._faults.append(_Fault("hold", method, path, nth - 1, hold=hold))
        return hold

    def limit_login_failures(self, count: int, *, wait_seconds: float = 60) -> None:
        """Taiga's `login-fail` throttle scope: once `count` POSTs to /auth or /auth/refresh have
        been answered 400 or 401 (from now), every later one gets 429, even with the right
        password or a good refresh token, until `clear_faults()`."""
        with self._lock:
            self._login_fail_limit, self._login_fail_wait = count, wait_seconds
            self._login_failures = 0

    def _login_fail_tripped(self) -> bool:
        limit = self._login_fail_limit
        return limit is not None and self._login_failures >= limit

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency = 0.0
            self._login_fail_limit = None
            self._max_in_flight = None

    def _take_fault(self, request: RecordedRequest) -> _Fault | None:
        for fault in self._faults:
            if not fault.matches(request):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.count -= 1
            if fault.count <= 0:
                self._faults.remove(fault)
            return fault
        return None

    # -- request handling (called from server threads)

    def handle(
        self, request: RecordedRequest, raw_path: str
    ) -> tuple[int, dict[str, str], bytes] | object:
        with self._lock:
            self._requests.append(request)
            latency = self._latency
            self._in_flight += 1
            limit = self._max_in_flight
            crowded = limit is not None and self._in_flight > limit
        try:
            if latency:
                time.sleep(latency)
            if crowded:
                return self._render(_throttled(self._crowded_wait))
            return self._answer(request, raw_path)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(
        self, request: RecordedRequest, raw_path: str
    ) -> tuple[int, dict[str, str], bytes] | object:
        with self._lock:
            fault = self._take_fault(request)
            if fault is not None and fault.kind == "fail":
                return self._render(_Reply(fault.status, html=_html_error(fault.status)))
            if fault is not None and fault.kind == "throttle":
                return self._render(_throttled(fault.wait))
            login = request.method == "POST" and request.path in LOGIN_PATHS
            if login and self._login_fail_tripped():
                return self._render(_throttled(self._login_fail_wait))
            try:
                reply = self._route(request, raw_path)
            except _Reply as exc:
                reply = exc
            if login and reply.status in (400, 401):
                self._login_failures += 1
            if fault is not None and fault.kind == "lose":
                return _LOSE
            if fault is not None and fault.kind == "expire":
                self.expire_access_tokens(fault.username)
                if fault.refresh_too:
                    self.expire_refresh_tokens(fault.username)
            rendered = self._render(reply)
        if fault is not None and fault.hold is not None:
            fault.hold.block()
        return rendered

    def _render(self, reply: _Reply) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Vary": "Accept-Language",
            "Content-Language": "en",
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Expose-Headers": EXPOSE_HEADERS,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
        }
        if reply.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        headers.update(reply.headers)
        if reply.html is not None:
            headers["Content-Type"] = "text/html"
            payload = reply.html.encode()
        elif reply.status == 204:
            payload = b""
        else:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(reply.body).encode()
        return reply.status, headers, payload

    _ROUTES: tuple[tuple[str, str, str], ...] = (
        ("POST", r"/auth", "auth"),
        ("POST", r"/auth/refresh", "auth_refresh"),
        ("GET", r"/users/me", "users_me"),
        ("GET", r"/projects", "projects_list"),
        ("GET", r"/projects/by_slug", "project_by_slug"),
        ("GET", r"/projects/(?P<pk>\d+)", "project_get"),
        ("GET", r"/roles", "roles_list"),
        ("GET", r"/milestones", "milestones_list"),
        ("POST", r"/milestones", "milestones_create"),
        ("GET", r"/milestones/(?P<pk>\d+)", "milestone_get"),
        ("DELETE", r"/milestones/(?P<pk>\d+)", "milestone_delete"),
        ("GET", r"/userstories", "stories_list"),
        ("POST", r"/userstories", "stories_create"),
        ("GET", r"/userstories/by_ref", "story_by_ref"),
        ("POST", r"/userstories/bulk_create", "stories_bulk_create"),
        ("POST", r"/userstories/bulk_update_milestone", "stories_bulk_update_milestone"),
        ("GET", r"/userstories/(?P<pk>\d+)", "story_get"),
        ("PATCH", r"/userstories/(?P<pk>\d+)", "story_patch"),
        ("DELETE", r"/userstories/(?P<pk>\d+)", "story_delete"),
        ("GET", r"/tasks", "tasks_list"),
        ("POST", r"/tasks", "tasks_create"),
        ("POST", r"/tasks/bulk_create", "tasks_bulk_create"),
        ("GET", r"/tasks/(?P<pk>\d+)", "task_get"),
        ("DELETE", r"/tasks/(?P<pk>\d+)", "task_delete"),
        ("PATCH", r"/tasks/(?P<pk>\d+)", "task_patch"),
    )

    def _route(self, request: RecordedRequest, raw_path: str) -> _Reply:
        if not raw_path.startswith(API_PREFIX + "/"):
            raise _Reply(404, html=HTML_404)
        path_matched = False
        for method, pattern, name in self._ROUTES:
            match = re.fullmatch(pattern, request.path)
            if match is None:
                continue
            path_matched = True
            if method == request.method:
                handler: Callable[..., _Reply] = getattr(self, f"_r_{name}")
                return handler(request, **{k: int(v) for k, v in match.groupdict().items()})
        if path_matched:
            raise _Reply(
                405,
                {
                    "_error_message": f"Method '{request.method}' not allowed.",
                    "_error_type": "taiga.base.exceptions.MethodNotAllowed",
                },
            )
        raise _Reply(404, html=HTML_404)

    # -- auth helpers

    def _current_user(self, request: RecordedRequest) -> _User | None:
        """None for anonymous; raises the JWT-shaped 401 for a bad bearer token."""
        token = request.bearer
        if token is None:
            return None
        access = self._access.get(token)
        if access is not None and not access[1] and access[0] in self._users:
            return self._users[access[0]]
        message = (
            "Token has wrong type" if token in self._refresh else "Token is invalid or expired"
        )
        raise _Reply(
            401,
            {
                "detail": "Given token not valid for any token type",
                "code": "token_not_valid",
                "messages": [
                    {"token_class": "AccessToken", "token_type": "access", "message": message}
                ],
            },
        )

    def _require_user(self, request: RecordedRequest) -> _User:
        user = self._current_user(request)
        if user is None:
            raise _Reply(401, NOT_AUTHENTICATED)
        return user

    def _membership(self, project_id: int, user_id: int) -> _Membership | None:
        for membership in self._memberships.values():
            if membership.project == project_id and membership.user == user_id:
                return membership
        return None

    def _permissions(self, project: _Project, user: _User | None) -> set[str]:
        if user is None:
            return set() if project.is_private else set(VIEW_PERMISSIONS)
        membership = self._membership(project.id, user.id)
        if user.is_superuser or project.owner == user.id or (membership and membership.is_admin):
            return set(ALL_PERMISSIONS)
        if membership is not None:
            return set(self._roles[membership.role].permissions)
        return set() if project.is_private else set(VIEW_PERMISSIONS)

    def _check(self, project: _Project, user: _User | None, permission: str) -> None:
        """403 when the permission is missing (401 when anonymous)."""
        if permission not in self._permissions(project, user):
            raise _Reply(401, NOT_AUTHENTICATED) if user is None else _Reply(403, PERMISSION_DENIED)

    def _visible_projects(self, user: _User | None, permission: str) -> set[int]:
        return {
            pid for pid, p in self._projects.items() if permission in self._permissions(p, user)
        }

    # -- body helpers

    @staticmethod
    def _payload(request: RecordedRequest) -> dict[str, Any]:
        if request.body.strip() and request.json is None:
            try:
                json.loads(request.body)
            except ValueError as exc:
                raise _Reply(
                    400,
                    {
                        "_error_message": f"JSON parse error - {exc}",
                        "_error_type": "taiga.base.exceptions.ParseError",
                    },
                ) from exc
        return request.json if isinstance(request.json, dict) else {}

    def _user_body(self, user: _User) -> dict[str, Any]:
        roles = sorted(
            {self._roles[m.role].name for m in self._memberships.values() if m.user == user.id}
        )
        owned = [p for p in self._projects.values() if p.owner == user.id]
        return {
            "id": user.id,
            "username": user.username,
            "full_name": user.full_name,
            "full_name_display": user.full_name,
            "color": user.color,
            "bio": "",
            "lang": "",
            "theme": "",
            "timezone": "",
            "is_active": True,
            "photo": None,
            "big_photo": None,
            "gravatar_id": user.gravatar_id,
            "roles": roles,
            "total_private_projects": sum(p.is_private for p in owned),
            "total_public_projects": sum(not p.is_private for p in owned),
            "email": user.email,
            "uuid": user.uuid,
            "date_joined": user.date_joined,
            "read_new_terms": user.read_new_terms,
            "accepted_terms": True,
            "max_private_projects": None,
            "max_public_projects": None,
            "max_memberships_private_projects": None,
            "max_memberships_public_projects": None,
            "verified_email": user.verified_email,
        }

    def _user_extra(self, user_id: int | None) -> dict[str, Any] | None:
        user = self._users.get(user_id) if user_id is not None else None
        if user is None:
            return None
        return {
            "username": user.username,
            "full_name_display": user.full_name,
            "photo": None,
            "big_photo": None,
            "gravatar_id": user.gravatar_id,
            "is_active": True,
            "id": user.id,
        }

    def _project_extra(self, project_id: int) -> dict[str, Any]:
        project = self._projects[project_id]
        return {
            "name": project.name,
            "slug": project.slug,
            "logo_small_url": None,
            "id": project.id,
        }

    def _project_body(
        self, project: _Project, user: _User | None, *, listing: bool = False
    ) -> dict[str, Any]:
        permissions = self._permissions(project, user)
        membership = self._membership(project.id, user.id) if user else None
        is_admin = bool(
            user
            and (
                user.is_superuser
                or project.owner == user.id
                or (membership and membership.is_admin)
            )
        )
        members = [m for m in self._memberships.values() if m.project == project.id]
        milestones = sorted(
            (m for m in self._milestones.values() if m["project"] == project.id),
            key=lambda m: (m["estimated_start"], m["id"]),
        )
        tags = sorted(
            {t for s in self._stories.values() if s["project"] == project.id for t in s["tags"]}
        )
        body: dict[str, Any] = {
            "id": project.id,
            "name": project.name,
            "slug": project.slug,
            "description": project.description,
            "created_date": project.created_date,
            "modified_date": project.modified_date,
            "owner": self._user_extra(project.owner),
            "members": [self._member_body(m) for m in members],
            "total_milestones": None,
            "total_story_points": None,
            "is_contact_activated": True,
            "is_epics_activated": False,
            "is_backlog_activated": True,
            "is_kanban_activated": False,
            "is_wiki_activated": True,
            "is_issues_activated": True,
            "videoconferences": None,
            "videoconferences_extra_data": None,
            "creation_template": 1,
            "is_private": project.is_private,
            "anon_permissions": [] if project.is_private else list(VIEW_PERMISSIONS),
            "public_permissions": [] if project.is_private else list(VIEW_PERMISSIONS),
            "is_featured": False,
            "is_looking_for_people": False,
            "looking_for_people_note": "",
            "blocked_code": None,
            "totals_updated_datetime": project.modified_date,
            "total_fans": 0,
            "total_fans_last_week": 0,
            "total_fans_last_month": 0,
            "total_fans_last_year": 0,
            "total_activity": 0,
            "total_activity_last_week": 0,
            "total_activity_last_month": 0,
            "total_activity_last_year": 0,
            "tags": [],
            "tags_colors": dict.fromkeys(tags),
            "default_epic_status": 1,
            "default_points": 1,
            "default_us_status": 1,
            "default_task_status": 1,
            "default_priority": 2,
            "default_severity": 3,
            "default_issue_status": 1,
            "default_issue_type": 1,
            "default_swimlane": None,
            # Taiga's order changes between calls; clients must compare as a set.
            "my_permissions": sorted(permissions, key=lambda _: secrets.randbelow(1000)),
            "i_am_owner": bool(user and project.owner == user.id),
            "i_am_admin": is_admin,
            "i_am_member": membership is not None,
            "notify_level": 1 if membership is not None else None,
            "total_closed_milestones": sum(m["closed"] for m in milestones),
            "is_watcher": membership is not None,
            "total_watchers": len(members),
            "logo_small_url": None,
            "logo_big_url": None,
            "is_fan": False,
            "my_homepage": False,
            "swimlanes": None,
            "epic_custom_attributes": None,
            "userstory_custom_attributes": None,
            "task_custom_attributes": None,
            "issue_custom_attributes": None,
            "roles": [
                {
                    "id": r.id,
                    "name": r.name,
                    "slug": r.slug,
                    "permissions": list(r.permissions),
                    "order": r.order,
                    "computable": r.computable,
                    "project_id": project.id,
                }
                for r in sorted(self._roles.values(), key=lambda r: (r.order, r.id))
                if r.project == project.id
            ],
            "total_memberships": len(members),
            "is_out_of_owner_limits": False,
            "is_private_extra_info": {"can_be_updated": True, "reason": None},
            "max_memberships": None,
            "epics_csv_uuid": None,
            "userstories_csv_uuid": None,
            "tasks_csv_uuid": None,
            "issues_csv_uuid": None,
            "transfer_token": None,
            "milestones": [
                {"id": m["id"], "slug": m["slug"], "name": m["name"], "closed": m["closed"]}
                for m in milestones
            ],
        }
        for name, values in PROJECT_VALUES.items():
            body[name] = [{**value, "project_id": project.id} for value in values]
        if listing:
            body["members"] = [m.user for m in members]
        omit = PROJECT_LIST_OMITS if listing else (set() if is_admin else ADMIN_ONLY_PROJECT_KEYS)
        return {k: v for k, v in body.items() if k not in omit}

    def _member_body(self, membership: _Membership) -> dict[str, Any]:
        user = self._users[membership.user]
        return {
            "role": membership.role,
            "role_name": self._roles[membership.role].name,
            "full_name": user.full_name,
            "full_name_display": user.full_name,
            "is_active": True,
            "id": user.id,
            "color": user.color,
            "username": user.username,
            "photo": None,
            "gravatar_id": user.gravatar_id,
        }

    def _project_milestones(self, project_id: int | None) -> list[dict[str, Any]]:
        found = [
            m for m in self._milestones.values() if project_id is None or m["project"] == project_id
        ]
        return sorted(found, key=lambda m: (m["estimated_start"], m["id"]), reverse=True)

    def _milestone_slug(self, project_id: int, name: str) -> str:
        base = slugify(name)
        taken = {m["slug"] for m in self._milestones.values() if m["project"] == project_id}
        slug, n = base, 1
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        return slug

    def _milestone_body(self, milestone: dict[str, Any], *, detail: bool) -> dict[str, Any]:
        stories = sorted(
            (s for s in self._stories.values() if s["milestone"] == milestone["id"]),
            key=lambda s: (s["sprint_order"], s["id"]),
        )
        return {
            **self._in_project(milestone),
            "id": milestone["id"],
            "name": milestone["name"],
            "slug": milestone["slug"],
            "owner": milestone["owner"],
            "estimated_start": milestone["estimated_start"],
            "estimated_finish": milestone["estimated_finish"],
            "created_date": milestone["created_date"],
            "modified_date": milestone["modified_date"],
            "closed": milestone["closed"],
            "disponibility": 0.0,
            "order": milestone["order"],
            "user_stories": [self._embedded_story(s) for s in stories],
            "total_points": None,
            "closed_points": None,
        }

    # Fields that story, task and sprint bodies share, in Taiga's order (spread into each body).

    def _in_project(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "project": item["project"],
            "project_extra_info": self._project_extra(item["project"]),
        }

    def _status(self, item: dict[str, Any], kind: str) -> dict[str, Any]:
        return {
            "status": item["status"],
            "status_extra_info": self._status_info(item["status"], kind),
        }

    def _people(self, item: dict[str, Any]) -> dict[str, Any]:
        assigned = item.get("assigned_to")
        return {
            "assigned_to": assigned,
            "assigned_to_extra_info": self._user_extra(assigned),
            "owner": item["owner"],
            "owner_extra_info": self._user_extra(item["owner"]),
            "is_watcher": False,
            "total_watchers": 0,
            "is_voter": False,
            "total_voters": 0,
        }

    @staticmethod
    def _described(item: dict[str, Any]) -> dict[str, Any]:
        """The detail-only description fields."""
        return {
            "blocked_note_html": "",
            "description": item["description"],
            "description_html": _html(item["description"]),
        }

    def _sprint_of(self, item: dict[str, Any]) -> dict[str, Any] | None:
        return self._milestones.get(item["milestone"]) if item["milestone"] else None

    def _status_info(self, status_id: int, kind: str) -> dict[str, Any]:
        status = next(s for s in PROJECT_VALUES[kind] if s["id"] == status_id)
        return {"name": status["name"], "color": status["color"], "is_closed": status["is_closed"]}

    def _embedded_story(self, story: dict[str, Any]) -> dict[str, Any]:
        return {
            **_due(story),
            "assigned_to": story.get("assigned_to"),
            "assigned_to_extra_info": self._user_extra(story.get("assigned_to")),
            **self._status(story, "us_statuses"),
            **self._in_project(story),
            "id": story["id"],
            "ref": story["ref"],
            "milestone": story["milestone"],
            "is_closed": False,
            "created_date": story["created_date"],
            "modified_date": story["modified_date"],
            "finish_date": None,
            "subject": story["subject"],
            "client_requirement": False,
            "team_requirement": False,
            "external_reference": story["external_reference"],
            "version": story["version"],
            "is_blocked": False,
            "blocked_note": "",
            "backlog_order": story["backlog_order"],
            "sprint_order": story["sprint_order"],
            "kanban_order": story["kanban_order"],
            "epics": None,
            "points": {str(r): 1 for r in self._computable_roles(story["project"])},
            "total_points": None,
        }

    def _computable_roles(self, project_id: int) -> list[int]:
        return sorted(
            r.id for r in self._roles.values() if r.project == project_id and r.computable
        )

    def _story_body(
        self, story: dict[str, Any], *, detail: bool, neighbors: bool = False
    ) -> dict[str, Any]:
        milestone = self._sprint_of(story)
        body: dict[str, Any] = {
            **_due(story),
            "total_comments": 0,
            "tags": [[tag, None] for tag in story["tags"]],
            "attachments": [],
            **self._status(story, "us_statuses"),
            **self._people(story),
            **self._in_project(story),
            "id": story["id"],
            "ref": story["ref"],
            "milestone": story["milestone"],
            "milestone_slug": milestone["slug"] if milestone else None,
            "milestone_name": milestone["name"] if milestone else None,
            "is_closed": False,
            "points": {str(r): 1 for r in self._computable_roles(story["project"])},
            "backlog_order": story["backlog_order"],
            "sprint_order": story["sprint_order"],
            "kanban_order": story["kanban_order"],
            "created_date": story["created_date"],
            "modified_date": story["modified_date"],
            "finish_date": None,
            "subject": story["subject"],
            "client_requirement": False,
            "team_requirement": False,
            "generated_from_issue": None,
            "generated_from_task": None,
            "from_task_ref": None,
            "external_reference": story["external_reference"],
            "tribe_gig": None,
            "version": story["version"],
            "watchers": [],
            "is_blocked": False,
            "blocked_note": "",
            "total_points": None,
            "comment": "",
            "origin_issue": None,
            "origin_task": None,
            "epics": None,
            "epic_order": None,
            "tasks": [],
            "total_attachments": 0,
            "swimlane": None,
            "assigned_users": [story["assigned_to"]] if story.get("assigned_to") else [],
        }
        if detail:
            body.update(self._described(story))
        if neighbors:
            body["neighbors"] = {"previous": None, "next": None}
        return body

    def _task_body(self, task: dict[str, Any], *, detail: bool) -> dict[str, Any]:
        milestone = self._sprint_of(task)
        story = self._stories.get(task["user_story"]) if task["user_story"] else None
        body: dict[str, Any] = {
            **_due(task),
            "total_comments": 0,
            "tags": [],
            "attachments": [],
            **self._in_project(task),
            **self._status(task, "task_statuses"),
            **self._people(task),
            "id": task["id"],
            "user_story": task["user_story"],
            "ref": task["ref"],
            "milestone": task["milestone"],
            "milestone_slug": milestone["slug"] if milestone else None,
            "created_date": task["created_date"],
            "modified_date": task["modified_date"],
            "finished_date": None,
            "subject": task["subject"],
            "us_order": task["us_order"],
            "taskboard_order": task["taskboard_order"],
            "is_iocaine": False,
            "external_reference": task["external_reference"],
            "version": task["version"],
            "watchers": [],
            "is_blocked": False,
            "blocked_note": "",
            "is_closed": False,
            "user_story_extra_info": (
                {"id": story["id"], "ref": story["ref"], "subject": story["subject"], "epics": None}
                if story
                else None
            ),
        }
        if detail:
            body["comment"] = ""
            body["generated_user_stories"] = None
            body.update(self._described(task))
        return body

    # -- creation (callers hold the lock)

    def _create_story(
        self,
        project_id: int,
        subject: str,
        owner_id: int,
        milestone_id: int | None,
        description: str,
        tags: list[str] | tuple[str, ...],
        story_id: int | None = None,
    ) -> dict[str, Any]:
        order = _order_value()
        story = self._new_item(
            "story", project_id, subject, description, milestone_id, owner_id, story_id
        )
        story["tags"] = list(dict.fromkeys(str(t).lower() for t in tags))
        story |= {"backlog_order": order, "sprint_order": order, "kanban_order": order}
        self._stories[story["id"]] = story
        return story

    def _create_task(
        self,
        project_id: int,
        subject: str,
        owner_id: int,
        user_story_id: int | None,
        milestone_id: int | None,
        description: str,
        *,
        item_id: int | None = None,
    ) -> dict[str, Any]:
        order = _order_value() // 1000
        task = self._new_item(
            "task", project_id, subject, description, milestone_id, owner_id, item_id
        )
        task |= {"user_story": user_story_id, "us_order": order, "taskboard_order": order}
        self._tasks[task["id"]] = task
        return task

    def _new_item(
        self,
        kind: str,
        project_id: int,
        subject: str,
        description: str,
        milestone_id: int | None,
        owner_id: int,
        item_id: int | None = None,
    ) -> dict[str, Any]:
        """The fields a new story and a new task share: the next id (or `item_id`) and the
        project's next ref."""
        project = self._projects[project_id]
        now = timestamp()
        return {
            "id": self._claim_id(kind, item_id),
            "ref": next(project.refs),
            "project": project_id,
            "subject": subject,
            "description": description,
            "milestone": milestone_id,
            "owner": owner_id,
            "status": 1,
            "external_reference": None,
            "version": 1,
            "created_date": now,
            "modified_date": now,
        }

    # -- pagination

    def _paginate(
        self, request: RecordedRequest, items: list[Any], headers: dict[str, str] | None = None
    ) -> _Reply:
        headers = dict(headers or {})
        if "x-disable-pagination" in request.headers:  # a presence check, like Taiga's
            return _Reply(200, items, headers)
        try:
            size = int(request.query.get("page_size", PAGINATE_BY))
        except ValueError:
            size = PAGINATE_BY
        size = min(size, MAX_PAGINATE_BY) if size > 0 else PAGINATE_BY
        pages = max(1, math.ceil(len(items) / size))
        raw_page = request.query.get("page", "1")
        try:
            page = pages if raw_page == "last" else int(raw_page)
        except ValueError:
            page = 0
        if not 1 <= page <= pages:
            raise _Reply(404, {"_error_message": BAD_PAGE})
        if "x-lazy-pagination" not in request.headers:
            headers["x-pagination-count"] = str(len(items))
        headers["x-paginated"] = "true"
        headers["x-paginated-by"] = str(size)
        headers["x-pagination-current"] = str(page)
        if page < pages:
            headers["X-Pagination-Next"] = self._page_url(request, page + 1)
        if page > 1:
            headers["X-Pagination-Prev"] = self._page_url(request, page - 1)
        return _Reply(200, items[(page - 1) * size : page * size], headers)

    @staticmethod
    def _page_url(request: RecordedRequest, page: int) -> str:
        query = [(k, v) for k, v in request.query.items() if k != "page"] + [("page", str(page))]
        return f"{BACKEND_ORIGIN}{API_PREFIX}{request.path}?{urlencode(query)}"

    # -- validation helpers

    def _assignee(
        self, payload: dict[str, Any], project_id: int | None, errors: dict[str, list[str]]
    ) -> int | None:
        """`assigned_to` of a new story or task: a user who is not a project member is a 400
        (sample 125), even a superuser."""
        user_id = self._pk(payload, "assigned_to", self._users, errors)
        if user_id is None or project_id is None:
            return None
        if self._membership(project_id, user_id) is None:
            errors["assigned_to"] = ["The user must be a project member."]
            return None
        return user_id

    def _pk(
        self,
        payload: dict[str, Any],
        name: str,
        table: dict[int, Any],
        errors: dict[str, list[str]],
    ) -> int | None:
        value = payload.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            else:
                errors[name] = [
                    f"Incorrect type. Expected pk value, received {type(value).__name__}."
                ]
                return None
        if value not in table:
            errors[name] = [f"Invalid pk '{value}' - object does not exist."]
            return None
        return value

    def _required_pk(
        self,
        payload: dict[str, Any],
        name: str,
        table: dict[int, Any],
        errors: dict[str, list[str]],
    ) -> int | None:
        if name not in payload:
            errors[name] = [REQUIRED]
        return self._pk(payload, name, table, errors)

    def _valid_project(
        self,
        errors: dict[str, list[str]],
        project_id: int | None,
        user: _User,
        permission: str,
    ) -> int:
        """The 400 of the collected field errors, else the project once `user` may `permission`."""
        if errors:
            raise _Reply(400, errors)
        assert project_id is not None
        self._check(self._projects[project_id], user, permission)
        return project_id

    @staticmethod
    def _text(payload: dict[str, Any], name: str, errors: dict[str, list[str]]) -> str:
        value = payload.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors[name] = [REQUIRED]
            return ""
        return str(value)

    # -- endpoints

    def _r_auth(self, request: RecordedRequest) -> _Reply:
        payload = self._payload(request)
        if payload.get("type") not in ("normal", "github", "gitlab"):
            raise _Reply(
                400,
                {
                    "_error_message": "invalid login type",
                    "_error_type": "taiga.base.exceptions.BadRequest",
                },
            )
        errors = {f: [REQUIRED] for f in ("username", "password") if not payload.get(f)}
        if errors:
            raise _Reply(400, errors)
        login = str(payload["username"])
        user = next(
            (
                u
                for u in self._users.values()
                if u.username == login or u.email.lower() == login.lower()
            ),
            None,
        )
        if user is None or user.password != payload["password"]:
            raise _Reply(
                401,
                {
                    "detail": "No active account found with the given credentials",
                    "code": "invalid_credentials",
                },
            )
        return _Reply(200, {**self._user_body(user), **self._issue_ordered(user.id)})

    def _issue_ordered(self, user_id: int) -> dict[str, str]:
        tokens = self._issue(user_id)
        return {"refresh": tokens["refresh"], "auth_token": tokens["auth_token"]}

    def _r_auth_refresh(self, request: RecordedRequest) -> _Reply:
        payload = self._payload(request)
        token = payload.get("refresh")
        if not token:
            raise _Reply(400, {"refresh": [REQUIRED]})
        entry = self._refresh.get(str(token))
        if entry is None or entry[1]:
            raise _Reply(401, {"detail": "Token is invalid or expired", "code": "token_not_valid"})
        self._refresh[str(token)] = (entry[0], True)  # rotated: the old one is denylisted
        return _Reply(200, self._issue(entry[0]))

    def _r_users_me(self, request: RecordedRequest) -> _Reply:
        return _Reply(200, self._user_body(self._require_user(request)))

    def _r_projects_list(self, request: RecordedRequest) -> _Reply:
        user = self._current_user(request)
        visible = self._visible_projects(user, "view_project")
        member = request.query.get("member")
        projects = [
            p
            for pid, p in sorted(self._projects.items())
            if pid in visible
            and (
                member is None
                or (member.isdigit() and self._membership(pid, int(member)) is not None)
            )
        ]
        return self._paginate(
            request, [self._project_body(p, user, listing=True) for p in projects]
        )

    def _r_project_get(self, request: RecordedRequest, pk: int) -> _Reply:
        user = self._current_user(request)
        project = self._projects.get(pk)
        if project is None:
            raise _Reply(404, {"_error_message": ""})
        self._check(project, user, "view_project")
        return _Reply(200, self._project_body(project, user))

    def _r_project_by_slug(self, request: RecordedRequest) -> _Reply:
        user = self._current_user(request)
        slug = request.query.get("slug", "")
        project = next((p for p in self._projects.values() if p.slug == slug), None)
        if project is None or "view_project" not in self._permissions(project, user):
            raise _Reply(404, {"_error_message": ""})
        return _Reply(200, self._project_body(project, user))

    def _r_roles_list(self, request: RecordedRequest) -> _Reply:
        user = self._current_user(request)
        visible = self._visible_projects(user, "view_project")
        wanted = request.query.get("project")
        roles = [
            {
                "id": r.id,
                "name": r.name,
                "slug": r.slug,
                "project": r.project,
                "order": r.order,
                "computable": r.computable,
                "permissions": list(r.permissions),
                "members_count": sum(m.role == r.id for m in self._memberships.values()),
            }
            for r in sorted(self._roles.values(), key=lambda r: (r.project, r.order, r.id))
            if r.project in visible and (wanted is None or str(r.project) == wanted)
        ]
        return self._paginate(request, roles)

    def _r_milestones_list(self, request: RecordedRequest) -> _Reply:
        user = self._current_user(request)
        visible = self._visible_projects(user, "view_milestones")
        wanted = request.query.get("project")
        found = [
            m
            for m in self._project_milestones(None)
            if m["project"] in visible and (wanted is None or str(m["project"]) == wanted)
        ]
        closed = sum(m["closed"] for m in found)
        headers = {
            "Taiga-Info-Total-Opened-Milestones": str(len(found) - closed),
            "Taiga-Info-Total-Closed-Milestones": str(closed),
        }
        return self._paginate(
            request, [self._milestone_body(m, detail=False) for m in found], headers
        )

    def _r_milestone_get(self, request: RecordedRequest, pk: int) -> _Reply:
        user = self._current_user(request)
        milestone = self._milestones.get(pk)
        if milestone is None:
            raise _Reply(404, {"_error_message": "No Milestone matches the given query."})
        self._check(self._projects[milestone["project"]], user, "view_milestones")
        return _Reply(200, self._milestone_body(milestone, detail=True))

    def _r_milestones_create(self, request: RecordedRequest) -> _Reply:
        user = self._require_user(request)
        payload = self._payload(request)
        errors: dict[str, list[str]] = {}
        project_id = self._required_pk(payload, "project", self._projects, errors)
        name = self._text(payload, "name", errors)
        dates: dict[str, str] = {}
        for key in ("estimated_start", "estimated_finish"):
            value = payload.get(key)
            if not value:
                errors[key] = [REQUIRED]
                continue
            try:
                dates[key] = date.fromisoformat(str(value)).isoformat()
            except ValueError:
                errors[key] = [
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
                ]
        if not errors and dates["estimated_start"] > dates["estimated_finish"]:
            errors["_error_message"] = ["The estimated start must be earlier than the finish."]
        if not errors and any(
            m["project"] == project_id and m["name"] == name for m in self._milestones.values()
        ):
            errors["name"] = ["Duplicated name"]
        project_id = self._valid_project(errors, project_id, user, "add_milestone")
        body = self.add_milestone(
            project_id,
            name,
            dates["estimated_start"],
            dates["estimated_finish"],
            owner=user.username,
        )
        return _Reply(201, body)

    def _r_stories_list(self, request: RecordedRequest) -> _Reply:
        user = self._current_user(request)
        visible = self._visible_projects(user, "view_us")
        query = request.query
        found = _of_projects(self._stories, visible)
        if "project" in query:
            found = [s for s in found if str(s["project"]) == query["project"]]
        backlog = query.get("milestone") == "null" or query.get("milestone__isnull") == "true"
        if backlog:
            found = [s for s in found if s["milestone"] is None]
        elif "milestone" in query:
            found = [s for s in found if str(s["milestone"]) == query["milestone"]]
        headers = {
            "Taiga-Info-Userstories-Without-Swimlane": str(
                query.get("project", "").isdigit() and int(query["project"]) in visible
            ).lower()
        }
        if query.get("milestone") == "null":
            headers["Taiga-Info-Backlog-Total-Userstories"] = str(len(found))
        return self._paginate(request, [self._story_body(s, detail=False) for s in found], headers)

    def _visible_story(self, request: RecordedRequest, story: dict[str, Any] | None) -> _Reply:
        user = self._current_user(request)
        if story is None:
            raise _Reply(404, {"_error_message": "No UserStory matches the given query."})
        self._check(self._projects[story["project"]], user, "view_us")
        return _Reply(200, self._story_body(story, detail=True, neighbors=True))

    def _r_story_get(self, request: RecordedRequest, pk: int) -> _Reply:
        return self._visible_story(request, self._stories.get(pk))

    def _r_story_by_ref(self, request: RecordedRequest) -> _Reply:
        query = request.query
        story = next(
            (
                s
                for s in self._stories.values()
                if str(s["project"]) == query.get("project") and str(s["ref"]) == query.get("ref")
            ),
            None,
        )
        return self._visible_story(request, story)

    def _story_preconditions(self, project_id: int, milestone_id: int | None) -> None:
        """UserStoryViewSet.pre_conditions_on_save: another project's sprint is a 403."""
        if milestone_id is not None and self._milestones[milestone_id]["project"] != project_id:
            raise _Reply(
                403,
                {
                    **PERMISSION_DENIED,
                    "_error_message": "You don't have permissions to set this sprint to this "
                    "user story.",
                },
            )

    def _task_sprint(
        self, project_id: int, story_id: int | None, milestone_id: int | None
    ) -> int | None:
        """TaskViewSet.pre_save then pre_conditions_on_save: a task of a story takes the story's
        sprint whatever was sent; another project's sprint or story is a 400 WrongArguments."""
        if story_id is not None:
            milestone_id = self._stories[story_id]["milestone"]
        if milestone_id is not None and self._milestones[milestone_id]["project"] != project_id:
            raise _Reply(400, _wrong_arguments("set this sprint to this task"))
        if story_id is not None and self._stories[story_id]["project"] != project_id:
            raise _Reply(400, _wrong_arguments("set this user story to this task"))
        return milestone_id

    @staticmethod
    def _tags(payload: dict[str, Any]) -> list[str]:
        tags = payload.get("tags") or []
        if not isinstance(tags, list):
            raise _Reply(400, {"tags": ["Invalid tag list."]})
        return [str(t[0] if isinstance(t, list) and t else t) for t in tags]

    @staticmethod
    def _external_reference(payload: dict[str, Any]) -> list[str] | None:
        """Stored as sent and returned as a list of strings (108, 110); lists cannot be filtered
        by it (133): the list handlers ignore that query parameter like any unknown one."""
        value = payload.get("external_reference")
        return [str(item) for item in value] if isinstance(value, list) else None

    def _r_stories_create(self, request: RecordedRequest) -> _Reply:
        user = self._require_user(request)
        payload = self._payload(request)
        errors: dict[str, list[str]] = {}
        project_id = self._required_pk(payload, "project", self._projects, errors)
        subject = self._text(payload, "subject", errors)
        milestone_id = self._pk(payload, "milestone", self._milestones, errors)
        assigned_to = self._assignee(payload, project_id, errors)
        due_date = _due_date(payload, errors)
        project_id = self._valid_project(errors, project_id, user, "add_us")
        self._story_preconditions(project_id, milestone_id)
        story = self._create_story(
            project_id, subject, user.id, milestone_id, str(payload.get("description") or ""),
            self._tags(payload),
        )  # fmt: skip
        story |= {"assigned_to": assigned_to, "due_date": due_date}
        story["external_reference"] = self._external_reference(payload)
        return _Reply(201, self._story_body(story, detail=True))

    def _patchable(
        self, request: RecordedRequest, table: dict[int, dict[str, Any]], pk: int, model: str,
        permission: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The item a PATCH changes and the payload, once Taiga's checks passed: it exists (404),
        the user may change it (403), `version` is given and not stale for the fields sent (400)."""
        user = self._require_user(request)
        payload = self._payload(request)
        item = table.get(pk)
        if item is None:
            raise _Reply(404, {"_error_message": f"No {model} matches the given query."})
        self._check(self._projects[item["project"]], user, permission)
        version = payload.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _Reply(400, {"version": "The version parameter is not valid"})
        if self._stale(item, version, set(payload) - {"version"}):
            raise _Reply(400, {"version": "The version doesn't match with the current one"})
        return item, payload

    def _r_story_patch(self, request: RecordedRequest, pk: int) -> _Reply:
        story, payload = self._patchable(request, self._stories, pk, "UserStory", "modify_us")
        errors: dict[str, list[str]] = {}
        milestone_id = self._pk(payload, "milestone", self._milestones, errors)
        if errors:
            raise _Reply(400, errors)
        if "milestone" in payload:
            self._story_preconditions(story["project"], milestone_id)
        for key in ("subject", "description"):
            if key in payload:
                story[key] = str(payload[key])
        if "milestone" in payload:
            story["milestone"] = milestone_id
        if "tags" in payload:
            story["tags"] = self._tags(payload)
        self._bump_version(story, set(payload) - {"version"})
        return _Reply(200, self._story_body(story, detail=True), {"Taiga-Info-Order-Updated": "{}"})

    @staticmethod
    def _stale(item: dict[str, Any], version: int, fields: set[str]) -> bool:
        """Taiga's check is per field (samples 114, 132): a PATCH sent with an old version is
        refused only if a field it sends was changed by the edits since that version."""
        if version > item["version"]:
            return True
        changed = item.get("changed_fields", {})
        edits = range(version + 1, item["version"] + 1)
        return any(changed.get(v, set()) & fields for v in edits)

    @staticmethod
    def _bump_version(item: dict[str, Any], fields: set[str]) -> None:
        item["version"] += 1
        item.setdefault("changed_fields", {})[item["version"]] = fields
        item["modified_date"] = timestamp()

    def _r_stories_bulk_create(self, request: RecordedRequest) -> _Reply:
        user = self._require_user(request)
        payload = self._payload(request)
        errors: dict[str, list[str]] = {}
        project_id = self._required_pk(payload, "project_id", self._projects, errors)
        if not payload.get("bulk_stories"):
            errors["bulk_stories"] = [REQUIRED]
        project_id = self._valid_project(errors, project_id, user, "add_us")
        subjects = [
            line.strip() for line in str(payload["bulk_stories"]).splitlines() if line.strip()
        ]
        # Taiga ignores any milestone_id here: bulk-created stories land in the backlog.
        stories = [self._create_story(project_id, s, user.id, None, "", ()) for s in subjects]
        return _Reply(200, [self._story_body(s, detail=True) for s in stories])

    def _r_stories_bulk_update_milestone(self, request: RecordedRequest) -> _Reply:
        user = self._require_user(request)
        payload = self._payload(request)
        errors: dict[str, list[str]] = {}
        for key in ("project_id", "milestone_id", "bulk_stories"):
            if key not in payload:
                errors[key] = [REQUIRED]
        project_id = self._pk(payload, "project_id", self._projects, errors)
        milestone_id = self._pk(payload, "milestone_id", self._milestones, errors)
        project_id = self._valid_project(errors, project_id, user, "modify_us")
        for entry in payload["bulk_stories"]:
            story = self._stories.get(entry.get("us_id"))
            if story is not None and story["project"] == project_id:
                story["milestone"] = milestone_id
                story["sprint_order"] = entry.get("order", story["sprint_order"])
        return _Reply(204)

    def _r_tasks_list(self, request: RecordedRequest) -> _Reply:
        user = self._current_user(request)
        visible = self._visible_projects(user, "view_tasks")
        query = request.query
        found = _of_projects(self._tasks, visible)
        for key in ("project", "milestone", "user_story"):
            if key in query:
                wanted = query[key]
                found = [
                    t for t in found if (str(t[key]) if t[key] is not None else "null") == wanted
                ]
        return self._paginate(request, [self._task_body(t, detail=False) for t in found])

    def _r_task_get(self, request: RecordedRequest, pk: int) -> _Reply:
        user = self._current_user(request)
        task = self._tasks.get(pk)
        if task is None:
            raise _Reply(404, {"_error_message": "No Task matches the given query."})
        self._check(self._projects[task["project"]], user, "view_tasks")
        return _Reply(
            200,
            self._task_body(task, detail=True) | {"neighbors": {"previous": None, "next": None}},
        )

    def _r_tasks_create(self, request: RecordedRequest) -> _Reply:
        user = self._require_user(request)
        payload = self._payload(request)
        errors: dict[str, list[str]] = {}
        project_id = self._required_pk(payload, "project", self._projects, errors)
        subject = self._text(payload, "subject", errors)
        story_id = self._pk(payload, "user_story", self._stories, errors)
        milestone_id = self._pk(payload, "milestone", self._milestones, errors)
        assigned_to = self._assignee(payload, project_id, errors)
        due_date = _due_date(payload, errors)
        project_id = self._valid_project(errors, project_id, user, "add_task")
        milestone_id = self._task_sprint(project_id, story_id, milestone_id)
        task = self._create_task(
            project_id,
            subject,
            user.id,
            story_id,
            milestone_id,
            str(payload.get("description") or ""),
        )
        task |= {"assigned_to": assigned_to, "due_date": due_date}
        task["external_reference"] = self._external_reference(payload)
        return _Reply(201, self._task_body(task, detail=True))

    def _r_task_patch(self, request: RecordedRequest, pk: int) -> _Reply:
        """A task's subject, description or assignee, with its `version` (sample 124; any
        member may be the assignee, anyone else is a 400 as on create)."""
        task, payload = self._patchable(request, self._tasks, pk, "Task", "modify_task")
        errors: dict[str, list[str]] = {}
        assigned_to = self._assignee(payload, task["project"], errors)
        if errors:
            raise _Reply(400, errors)
        for key in ("subject", "description"):
            if key in payload:
                task[key] = str(payload[key])
        if "assigned_to" in payload:
            task["assigned_to"] = assigned_to
        self._bump_version(task, set(payload) - {"version"})
        return _Reply(200, self._task_body(task, detail=True))

    def _r_tasks_bulk_create(self, request: RecordedRequest) -> _Reply:
        user = self._require_user(request)
        payload = self._payload(request)
        errors: dict[str, list[str]] = {}
        for key in ("project_id", "milestone_id", "bulk_tasks"):
            if not payload.get(key):
                errors[key] = [REQUIRED]
        project_id = self._pk(payload, "project_id", self._projects, errors)
        milestone_id = self._pk(payload, "milestone_id", self._milestones, errors)
        story_id = self._pk(payload, "us_id", self._stories, errors)
        project_id = self._valid_project(errors, project_id, user, "add_task")
        subjects = [
            line.strip() for line in str(payload["bulk_tasks"]).splitlines() if line.strip()
        ]
        tasks = [
            self._create_task(project_id, s, user.id, story_id, milestone_id, "") for s in subjects
        ]
        return _Reply(200, [self._task_body(t, detail=True) for t in tasks])

    # -- deletes (samples 117-120, 129, 130)

    def _deletable(
        self, request: RecordedRequest, item: dict[str, Any] | None, permission: str
    ) -> dict[str, Any]:
        """Taiga's `destroy` checks the permission on the object before its 404, and a missing
        object fails that check: deleting a gone item is a 403 even for its owner."""
        user = self._require_user(request)
        if item is None:
            raise _Reply(403, PERMISSION_DENIED)
        self._check(self._projects[item["project"]], user, permission)
        return item

    def _r_task_delete(self, request: RecordedRequest, pk: int) -> _Reply:
        self._deletable(request, self._tasks.get(pk), "delete_task")
        del self._tasks[pk]
        return _Reply(204)

    def _r_story_delete(self, request: RecordedRequest, pk: int) -> _Reply:
        self._deletable(request, self._stories.get(pk), "delete_us")
        del self._stories[pk]
        for task_id in [t["id"] for t in self._tasks.values() if t["user_story"] == pk]:
            del self._tasks[task_id]  # Task.user_story cascades
        return _Reply(204)

    def _r_milestone_delete(self, request: RecordedRequest, pk: int) -> _Reply:
        self._deletable(request, self._milestones.get(pk), "delete_milestone")
        del self._milestones[pk]
        for item in [*self._stories.values(), *self._tasks.values()]:
            if item["milestone"] == pk:
                item["milestone"] = None  # stories and tasks fall back to the backlog
        return _Reply(204)

    # -- misc

    def _role(self, project_id: int, role: str | int) -> _Role:
        for candidate in self._roles.values():
            if candidate.project == project_id and role in (candidate.id, candidate.name):
                return candidate
        raise KeyError(f"no role {role!r} in fake Taiga project {project_id}")


_DUE_DATE: dict[str, Any] = {"due_date": None, "due_date_reason": "", "due_date_status": "not_set"}


def _due(item: dict[str, Any]) -> dict[str, Any]:
    """The due-date fields of a story or task (a set date's status is not recorded: "set")."""
    due = item.get("due_date")
    return _DUE_DATE | ({"due_date": due, "due_date_status": "set"} if due else {})


def _due_date(payload: dict[str, Any], errors: dict[str, list[str]]) -> str | None:
    value = payload.get("due_date")
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        errors["due_date"] = [
            "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
        ]
        return None


def _of_projects(rows: dict[int, dict[str, Any]], projects: Container[int]) -> list[dict[str, Any]]:
    """The rows of a table (stories, tasks) that belong to one of `projects`, by id."""
    return [r for r in sorted(rows.values(), key=lambda r: r["id"]) if r["project"] in projects]


def _throttled(wait: float) -> _Reply:
    message = THROTTLED["_error_message"].format(wait=max(0, math.ceil(wait) - 1))
    return _Reply(
        429, {**THROTTLED, "_error_message": message}, {"X-Throttle-Wait-Seconds": f"{wait:g}"}
    )


def _wrong_arguments(what: str) -> dict[str, str]:
    return {
        "_error_message": f"You don't have permissions to {what}.",
        "_error_type": "taiga.base.exceptions.WrongArguments",
    }


def _html(text: str) -> str:
    return f"<p>{text}</p>" if text else ""


def _html_error(status: int) -> str:
    reasons = {
        500: "Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    return HTML_5XX.format(status=status, reason=reasons.get(status, "Server Error"))


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: more simultaneous connects than that overflow it and
    # the client's SYN is retried a second later (a real Taiga sits behind a larger backlog).
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # e.g. a client that timed out and hung up before we answered


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTaiga  # set on the per-server subclass
    server_version = "gunicorn"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = None
        relative = (
            split.path[len(API_PREFIX) :] if split.path.startswith(API_PREFIX + "/") else split.path
        )
        request = RecordedRequest(
            method=self.command,
            path=relative,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            json=parsed,
            body=raw,
        )
        result = self.fake.handle(request, split.path)
        self.close_connection = True
        if result is _LOSE:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        assert isinstance(result, tuple)
        status, headers, payload = result
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


# --------------------------------------------------------------------------- fixture


@pytest.fixture
def fake_taiga() -> Iterator[FakeTaiga]:
    """A running fake Taiga seeded like the recorded samples (`seed_recorded`)."""
    fake = FakeTaiga()
    fake.seed_recorded()
    with fake.running():
        yield fake
