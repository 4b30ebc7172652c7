"""The fake Taiga answers like the real one: recorded requests replayed against it."""

from __future__ import annotations

import base64
import json
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.peers.fake_taiga import (
    ADMIN_ID,
    BACKEND_ORIGIN,
    BOB_ID,
    OTHER_PROJECT_ID,
    PROJECT_ID,
    SPRINT5_ID,
    SPRINT6_ID,
    FakeTaiga,
)

SAMPLES = Path(__file__).resolve().parent / "taiga_samples"

# Endpoints the fake does not implement (registration, project/role/membership admin).
NOT_SERVED = {
    "10_auth_register_public_bob.json",
    "21_projects_create.json",
    "26_roles_create_viewer.json",
    "27_memberships_create_bob_viewer.json",
    "28_memberships_list.json",
    "99_projects_create_admin_private_other.json",
    # Member lists: the planner reads members from the project detail only.
    "126_users_list_project_members.json",
    "127_memberships_list_project.json",
}
USERS = {5: "admin", 6: "alice", 7: "bob"}
IMPORTANT_HEADERS = (
    "x-pagination-count",
    "x-paginated",
    "x-paginated-by",
    "x-pagination-current",
    "x-pagination-next",
    "x-pagination-prev",
    "x-throttle-wait-seconds",
    "www-authenticate",
    "taiga-info-total-opened-milestones",
    "taiga-info-total-closed-milestones",
    "taiga-info-userstories-without-swimlane",
    "taiga-info-backlog-total-userstories",
)
EXACT_HEADERS = (
    "x-paginated",
    "x-paginated-by",
    "x-pagination-current",
    "x-throttle-wait-seconds",
    "www-authenticate",
)


def replayable() -> list[str]:
    return [
        p.name
        for p in sorted(SAMPLES.glob("*_*.json"), key=lambda p: int(p.name.split("_")[0]))
        if p.name not in NOT_SERVED
    ]


def load(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


def jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3 or not token.startswith("eyJ"):
        return None
    return json.loads(base64.urlsafe_b64decode(parts[1] + "=="))


def translate_token(fake: FakeTaiga, token: str, recorded_at: float) -> str:
    """The recorded JWT's equivalent on the fake (same user, type and expiry state)."""
    claims = jwt_claims(token)
    if claims is None:
        return token  # garbage stays garbage
    username = USERS[claims["user_id"]]
    issued = fake.login_tokens(username)
    if claims["token_type"] == "refresh":
        return issued["refresh"]
    if claims["exp"] < recorded_at:
        fake.expire_access_tokens(username)
    return issued["auth_token"]


def replay(fake: FakeTaiga, sample: dict[str, Any], http: httpx.Client) -> httpx.Response:
    request = sample["request"]
    recorded_at = parsedate_to_datetime(sample["response"]["headers"]["Date"]).timestamp()
    headers = {"Content-Type": "application/json"}
    for name, value in request["headers"].items():
        if name.lower() == "authorization":
            scheme, _, token = value.partition(" ")
            headers["Authorization"] = f"{scheme} {translate_token(fake, token, recorded_at)}"
        elif name.lower().startswith("x-"):
            headers[name] = value
    body = request["body"]
    if isinstance(body, dict) and "refresh" in body:
        body = {**body, "refresh": translate_token(fake, body["refresh"], recorded_at)}
    split = urlsplit(request["url"])
    url = fake.origin + split.path + (f"?{split.query}" if split.query else "")
    content = body.encode() if isinstance(body, str) else None
    return http.request(
        request["method"],
        url,
        headers=headers,
        content=content,
        json=None if isinstance(body, str) or body is None else body,
    )


def prepare(fake: FakeTaiga, name: str, sample: dict[str, Any], http: httpx.Client) -> None:
    """Bring the fake into the state the sample was recorded in."""
    number = int(name.split("_")[0])
    if 90 <= number <= 93:
        fake.throttle_next(1, wait_seconds=60)
    elif name == "05_auth_refresh_reuse_old_refresh_token.json":
        old = fake.login_tokens("alice")
        assert http.post(
            f"{fake.api_url}/auth/refresh", json={"refresh": old["refresh"]}
        ).is_success
        sample["request"]["body"] = {"refresh": old["refresh"]}
    elif name == "78_err_userstories_patch_stale_version.json":
        replay(fake, load("77_userstories_patch_with_version.json"), http)
    elif number in (110, 111, 125):  # tasks of story 79, which sample 108 created
        fake.add_story(PROJECT_ID, "SMP story 79", milestone_id=SPRINT6_ID, story_id=79)
        if number == 111:
            replay(fake, load("110_tasks_create_with_external_reference.json"), http)
    elif number == 124:  # task 296 of story 79, as sample 110 created it
        fake.add_story(PROJECT_ID, "SMP story 79", milestone_id=SPRINT6_ID, story_id=79)
        fake.add_task(PROJECT_ID, "SMP task", user_story_id=79, task_id=296)
    elif number in (113, 114, 121, 131, 132):
        _story_82_as_recorded(fake, number)
    elif number == 116:  # story 83 after the bulk move of 115
        fake.add_story(PROJECT_ID, "SMP Backlog story for bulk_update_milestone", story_id=83,
                       milestone_id=SPRINT6_ID)  # fmt: skip
    elif name == "117_tasks_delete.json":
        fake.add_task(PROJECT_ID, "SMP task to delete", owner="alice", task_id=297)
    elif name == "118_userstories_delete.json":
        fake.add_story(PROJECT_ID, "SMP story to delete", owner="alice", story_id=84)
    elif name in ("22_milestones_create_sprint5.json", "23_milestones_create_sprint6.json"):
        sample["request"]["body"]["name"] += " (replayed)"  # the seed already has these sprints


def _story_82_as_recorded(fake: FakeTaiga, number: int) -> None:
    """Story 82 of samples 112-132: made in the backlog (v1), moved into Sprint 6 (113, v2), its
    description edited (121, v3)."""
    fake.add_story(PROJECT_ID, "SMP Backlog story to move into Sprint 6", story_id=82)
    if number > 113:
        fake.edit("story", 82, milestone=SPRINT6_ID)
    if number == 132:
        fake.edit("story", 82, description="Moved into Sprint 6 by the planner.")


def key_set(body: Any) -> Any:
    if isinstance(body, dict):
        return set(body)
    if isinstance(body, list):
        return ("list", bool(body), set(body[0]) if body and isinstance(body[0], dict) else None)
    return type(body)


@pytest.mark.parametrize("name", replayable())
def test_the_fake_answers_like_the_recording(fake_taiga: FakeTaiga, name: str) -> None:
    sample = load(name)
    recorded = sample["response"]
    with httpx.Client(timeout=10) as http:
        prepare(fake_taiga, name, sample, http)
        response = replay(fake_taiga, sample, http)

    assert response.status_code == recorded["status"]
    recorded_type = recorded["headers"].get("Content-Type", "").split(";")[0]
    assert response.headers.get("content-type", "").split(";")[0] == recorded_type
    if recorded["status"] == 204:
        assert response.content == b""
    elif isinstance(recorded["body"], str):
        assert "<h1>Not Found</h1>" in response.text
    elif recorded["status"] >= 400:
        assert response.json() == recorded["body"]
    else:
        body = response.json()
        assert key_set(body) == key_set(recorded["body"])
        if isinstance(body, dict) and "my_permissions" in body:
            assert set(body["my_permissions"]) == set(recorded["body"]["my_permissions"])

    recorded_headers = {k.lower(): v for k, v in recorded["headers"].items()}
    for header in IMPORTANT_HEADERS:
        assert (header in response.headers) == (header in recorded_headers), header
        if header in recorded_headers and header in EXACT_HEADERS:
            assert response.headers[header] == recorded_headers[header], header
    for header in ("x-pagination-next", "x-pagination-prev"):
        if header in recorded_headers:
            ours, theirs = urlsplit(response.headers[header]), urlsplit(recorded_headers[header])
            assert f"{ours.scheme}://{ours.netloc}" == BACKEND_ORIGIN
            assert (ours.path, ours.query) == (theirs.path, theirs.query)


# --------------------------------------------------------------------------- fake behaviour


def test_pagination_defaults_to_30_and_reports_pages(fake_taiga: FakeTaiga) -> None:
    for n in range(58):
        fake_taiga.add_story(PROJECT_ID, f"Story {n}")
    token = fake_taiga.login_tokens("alice")["auth_token"]
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{fake_taiga.api_url}/userstories?project={PROJECT_ID}"
    with httpx.Client() as http:
        first = http.get(url, headers=auth)
        last = http.get(url + "&page=last", headers=auth)
        everything = http.get(url, headers={**auth, "x-disable-pagination": "0"})
        past = http.get(url + "&page=4", headers=auth)
    assert len(first.json()) == 30 and first.headers["x-pagination-count"] == "65"
    assert first.headers["X-Pagination-Next"].startswith(BACKEND_ORIGIN)
    assert "x-pagination-prev" not in first.headers
    assert len(last.json()) == 5 and "x-pagination-next" not in last.headers
    assert len(everything.json()) == 65 and "x-paginated" not in everything.headers
    assert past.status_code == 404


def test_refresh_tokens_rotate_and_old_access_tokens_keep_working(fake_taiga: FakeTaiga) -> None:
    tokens = fake_taiga.login_tokens("alice")
    with httpx.Client() as http:
        refreshed = http.post(
            f"{fake_taiga.api_url}/auth/refresh", json={"refresh": tokens["refresh"]}
        )
        reused = http.post(
            f"{fake_taiga.api_url}/auth/refresh", json={"refresh": tokens["refresh"]}
        )
        me = http.get(
            f"{fake_taiga.api_url}/users/me",
            headers={"Authorization": f"Bearer {tokens['auth_token']}"},
        )
    assert refreshed.status_code == 200
    assert set(refreshed.json()) == {"auth_token", "refresh"}
    assert refreshed.json()["refresh"] != tokens["refresh"]
    assert reused.status_code == 401
    assert me.status_code == 200


def test_fail_next_hits_only_the_nth_matching_call(fake_taiga: FakeTaiga) -> None:
    fake_taiga.fail_next(502, nth=2, method="GET", path="/users/*")
    token = fake_taiga.login_tokens("bob")["auth_token"]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client() as http:
        statuses = [
            http.get(f"{fake_taiga.api_url}/users/me", headers=auth).status_code for _ in range(3)
        ]
    assert statuses == [200, 502, 200]


def test_requests_are_recorded_with_path_query_headers_and_json(fake_taiga: FakeTaiga) -> None:
    with httpx.Client() as http:
        http.post(
            f"{fake_taiga.api_url}/auth?x=1",
            json={"type": "normal", "username": "bob", "password": "bob12345"},
        )
    recorded = fake_taiga.requests[-1]
    assert (recorded.method, recorded.path, recorded.query) == ("POST", "/auth", {"x": "1"})
    assert recorded.json["username"] == "bob"
    assert recorded.headers["content-type"] == "application/json"


def test_state_helpers_build_and_read_projects(fake_taiga: FakeTaiga) -> None:
    fake_taiga.add_user("carol", "carol123", full_name="Carol Dev")
    pid = fake_taiga.add_project("Side Project", owner="carol")
    sprint = fake_taiga.add_milestone(pid, "Sprint 1", "2025-01-06", "2025-01-19")
    story = fake_taiga.add_story(pid, "First", milestone_id=sprint["id"], tags=["x"])
    task = fake_taiga.add_task(pid, "Do it", user_story_id=story["id"], milestone_id=sprint["id"])
    assert (story["ref"], task["ref"]) == (1, 2)
    assert fake_taiga.milestones(pid)[0]["user_stories"][0]["id"] == story["id"]
    assert [s["subject"] for s in fake_taiga.stories(pid)] == ["First"]
    assert fake_taiga.tasks(pid)[0]["user_story_extra_info"]["ref"] == 1
    assert fake_taiga.user("carol").id not in (5, 6, 7)


def _post(fake: FakeTaiga, username: str, path: str, body: dict[str, Any]) -> httpx.Response:
    token = fake.login_tokens(username)["auth_token"]
    with httpx.Client() as http:
        return http.post(
            f"{fake.api_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )


def other_projects_sprint_and_story(fake: FakeTaiga) -> tuple[int, int]:
    """A sprint and a backlog story of project 2 (which alice cannot see)."""
    sprint = fake.add_milestone(OTHER_PROJECT_ID, "Other sprint", "2024-05-01", "2024-05-14")
    story = fake.add_story(OTHER_PROJECT_ID, "Other story")
    return sprint["id"], story["id"]


def test_a_story_in_another_projects_sprint_is_refused_like_taiga(fake_taiga: FakeTaiga) -> None:
    """taiga-back's UserStoryViewSet.pre_conditions_on_save: 403 PermissionDenied."""
    sprint_id, _ = other_projects_sprint_and_story(fake_taiga)
    answer = _post(
        fake_taiga, "alice", "/userstories",
        {"project": PROJECT_ID, "subject": "x", "milestone": sprint_id},
    )  # fmt: skip
    assert answer.status_code == 403
    assert answer.json() == {
        "_error_message": "You don't have permissions to set this sprint to this user story.",
        "_error_type": "taiga.base.exceptions.PermissionDenied",
    }


def test_a_task_of_another_projects_story_or_sprint_is_refused_like_taiga(
    fake_taiga: FakeTaiga,
) -> None:
    """taiga-back's TaskViewSet.pre_conditions_on_save: 400 WrongArguments, after the
    permission check (a viewer still gets 403)."""
    sprint_id, story_id = other_projects_sprint_and_story(fake_taiga)
    wrong_story = _post(
        fake_taiga,
        "alice",
        "/tasks",
        {"project": PROJECT_ID, "subject": "x", "user_story": story_id},
    )
    wrong_sprint = _post(
        fake_taiga,
        "alice",
        "/tasks",
        {"project": PROJECT_ID, "subject": "x", "milestone": sprint_id},
    )
    viewer = _post(
        fake_taiga, "bob", "/tasks", {"project": PROJECT_ID, "subject": "x", "user_story": story_id}
    )
    assert (wrong_story.status_code, wrong_sprint.status_code, viewer.status_code) == (
        400,
        400,
        403,
    )
    assert wrong_story.json() == {
        "_error_message": "You don't have permissions to set this user story to this task.",
        "_error_type": "taiga.base.exceptions.WrongArguments",
    }
    assert wrong_sprint.json()["_error_message"] == (
        "You don't have permissions to set this sprint to this task."
    )
    assert fake_taiga.tasks(OTHER_PROJECT_ID) == [] and len(fake_taiga.tasks(PROJECT_ID)) == 4


def test_a_task_of_a_story_lands_in_the_storys_sprint_whatever_milestone_is_sent(
    fake_taiga: FakeTaiga,
) -> None:
    """taiga-back's TaskViewSet.pre_save: `obj.milestone = obj.user_story.milestone`."""
    backlog_story = fake_taiga.add_story(PROJECT_ID, "In the backlog")
    in_sprint5 = _post(
        fake_taiga, "alice", "/tasks",
        {"project": PROJECT_ID, "subject": "a", "user_story": 1, "milestone": SPRINT6_ID},
    )  # fmt: skip
    in_backlog = _post(
        fake_taiga, "alice", "/tasks",
        {"project": PROJECT_ID, "subject": "b", "user_story": backlog_story["id"],
         "milestone": SPRINT6_ID},
    )  # fmt: skip
    assert (in_sprint5.status_code, in_sprint5.json()["milestone"]) == (201, SPRINT5_ID)
    assert (in_backlog.status_code, in_backlog.json()["milestone"]) == (201, None)


def test_login_failures_trip_the_login_fail_throttle_for_auth_and_refresh_only(
    fake_taiga: FakeTaiga,
) -> None:
    """Taiga counts 400/401 answers on /auth and /auth/refresh; once tripped even the right
    password and a good refresh token get 429 (samples 90 and 91), other endpoints do not."""
    good = fake_taiga.login_tokens("alice")
    fake_taiga.limit_login_failures(2, wait_seconds=60)
    with httpx.Client(base_url=fake_taiga.api_url) as http:
        wrong = http.post("/auth", json={"type": "normal", "username": "alice", "password": "x"})
        reused = http.post("/auth/refresh", json={"refresh": "garbage"})
        login = http.post(
            "/auth", json={"type": "normal", "username": "alice", "password": "alice123"}
        )
        refresh = http.post("/auth/refresh", json={"refresh": good["refresh"]})
        me = http.get("/users/me", headers={"Authorization": f"Bearer {good['auth_token']}"})
    assert [r.status_code for r in (wrong, reused, login, refresh, me)] == [401, 401, 429, 429, 200]
    assert login.headers["X-Throttle-Wait-Seconds"] == "60" and "retry-after" not in login.headers
    assert login.json()["_error_type"] == "taiga.base.exceptions.Throttled"


def test_external_reference_is_stored_as_sent_and_lists_ignore_it_as_a_filter(
    fake_taiga: FakeTaiga,
) -> None:
    """Samples 108, 110 and 133: echoed exactly on create and in lists, null when not sent,
    and `?external_reference=` filters nothing."""
    reference = ["taiga-planner", "plan-123:story:new-story-1"]
    with httpx.Client(timeout=10) as http:
        replay(fake_taiga, load("108_userstories_create_with_external_reference.json"), http)
        listed = replay(
            fake_taiga, load("133_userstories_list_external_reference_param_ignored.json"), http
        )
        everything = http.get(
            f"{fake_taiga.api_url}/userstories",
            params={"project": PROJECT_ID, "milestone": SPRINT6_ID},
            headers={"Authorization": f"Bearer {fake_taiga.login_tokens('alice')['auth_token']}"},
        )
    references = [s["external_reference"] for s in fake_taiga.stories(PROJECT_ID)]
    assert references.count(reference) == 1 and references.count(None) == len(references) - 1
    count = listed.headers["x-pagination-count"]
    assert count == everything.headers["x-pagination-count"] == str(len(everything.json()))
    assert listed.json()[0]["external_reference"] is None


def test_an_assignee_must_be_a_project_member_on_create_and_on_patch(
    fake_taiga: FakeTaiga,
) -> None:
    """Samples 124 and 125: any member may be assigned, a non-member (even a superuser) not."""
    refused = _post(
        fake_taiga, "alice", "/userstories",
        {"project": PROJECT_ID, "subject": "x", "assigned_to": ADMIN_ID},
    )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json() == {"assigned_to": ["The user must be a project member."]}
    task = fake_taiga.add_task(PROJECT_ID, "Write it")
    token = fake_taiga.login_tokens("alice")["auth_token"]
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        url = f"{fake_taiga.api_url}/tasks/{task['id']}"
        not_member = http.patch(url, json={"assigned_to": ADMIN_ID, "version": 1})
        member = http.patch(url, json={"assigned_to": BOB_ID, "version": 1})
    assert not_member.status_code == 400
    assert (member.status_code, member.json()["assigned_to"]) == (200, BOB_ID)
    assert member.json()["version"] == 2
