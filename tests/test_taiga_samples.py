"""Our models and error mapping against the real recorded Taiga exchanges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import BaseModel

from taiga import (
    BadCredentials,
    Forbidden,
    Milestone,
    NotFound,
    Project,
    RateLimited,
    TaigaError,
    TaigaTokens,
    TaigaUser,
    Task,
    Unauthorized,
    Unavailable,
    UserStory,
    ValidationFailed,
)
from taiga.responses import error_for

SAMPLES = Path(__file__).resolve().parent / "taiga_samples"


def load_samples() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, json.loads(path.read_text()))
        for path in sorted(SAMPLES.glob("*_*.json"))
        if path.name[0].isdigit()
    ]


def api_path(sample: dict[str, Any]) -> str:
    return urlsplit(sample["request"]["url"]).path.removeprefix("/api/v1")


MODELS_BY_PATH: list[tuple[str, tuple[type[BaseModel], ...]]] = [
    ("/auth/refresh", (TaigaTokens,)),
    ("/auth/register", (TaigaUser, TaigaTokens)),
    ("/auth", (TaigaUser, TaigaTokens)),
    ("/users/me", (TaigaUser,)),
    ("/projects", (Project,)),
    ("/milestones", (Milestone,)),
    ("/userstories", (UserStory,)),
    ("/tasks", (Task,)),
]


def models_for(path: str) -> tuple[type[BaseModel], ...]:
    for prefix, models in MODELS_BY_PATH:
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
            return models
    return ()


SUCCESSES = [
    (name, sample)
    for name, sample in load_samples()
    if sample["response"]["status"] < 300
    and sample["response"]["body"]
    and models_for(api_path(sample))
]
FAILURES = [(name, s) for name, s in load_samples() if s["response"]["status"] >= 400]


@pytest.mark.parametrize(("name", "sample"), SUCCESSES, ids=[n for n, _ in SUCCESSES])
def test_the_client_parses_every_recorded_body_it_has_a_model_for(
    name: str, sample: dict[str, Any]
) -> None:
    body = sample["response"]["body"]
    items = body if isinstance(body, list) else [body]
    for model in models_for(api_path(sample)):
        for item in items:
            model.model_validate(item)


def test_recorded_bodies_parse_into_the_values_we_rely_on() -> None:
    samples = dict(load_samples())
    story = UserStory.model_validate(samples["29_userstories_create.json"]["response"]["body"])
    assert story.tags == ["auth", "p1"] and story.milestone_slug == "sprint-5"
    bob = Project.model_validate(samples["42_projects_get_bob_viewer.json"]["response"]["body"])
    assert len(bob.my_permissions) == 8 and not bob.i_am_admin
    assert {m.id for m in bob.members} == {6, 7}
    admin = Project.model_validate(
        samples["43_projects_get_admin_superuser_not_member.json"]["response"]["body"]
    )
    assert admin.i_am_admin and not admin.i_am_member and len(admin.my_permissions) == 40
    sprints = [
        Milestone.model_validate(m) for m in samples["48_milestones_list.json"]["response"]["body"]
    ]
    assert [m.name for m in sprints] == ["Sprint 6", "Sprint 5"]
    task = Task.model_validate(samples["35_tasks_create.json"]["response"]["body"])
    assert (task.ref, task.user_story) == (8, 1)


def test_external_references_parse_as_sent_and_as_null_when_none_was_sent() -> None:
    samples = dict(load_samples())

    def body(name: str) -> Any:
        return samples[name]["response"]["body"]

    sent = ["taiga-planner", "plan-123:story:new-story-1"]
    story = UserStory.model_validate(body("108_userstories_create_with_external_reference.json"))
    listed = UserStory.model_validate(
        body("109_userstories_list_milestone_tag_filter_external_reference.json")[0]
    )
    assert story.external_reference == listed.external_reference == sent
    task = Task.model_validate(body("110_tasks_create_with_external_reference.json"))
    [listed_task] = body("111_tasks_list_by_user_story_external_reference.json")
    assert task.external_reference == Task.model_validate(listed_task).external_reference
    assert task.external_reference == ["taiga-planner", "plan-123:task:new-story-1/task-1"]
    [by_hand] = body("133_userstories_list_external_reference_param_ignored.json")
    assert UserStory.model_validate(by_hand).external_reference is None


EXPECTED_ERROR: dict[int, type[TaigaError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: TaigaError,
    429: RateLimited,
}


def recorded_response(sample: dict[str, Any]) -> httpx.Response:
    recorded = sample["response"]
    body = recorded["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    headers = {k: v for k, v in recorded["headers"].items() if k.lower() != "content-length"}
    return httpx.Response(recorded["status"], headers=headers, content=content)


@pytest.mark.parametrize(("name", "sample"), FAILURES, ids=[n for n, _ in FAILURES])
def test_every_recorded_error_maps_to_our_exception(name: str, sample: dict[str, Any]) -> None:
    error = error_for(recorded_response(sample))
    body = sample["response"]["body"]
    if isinstance(body, str):
        expected: type[TaigaError] = Unavailable  # Django's HTML 404 for an unknown path
    elif isinstance(body, dict) and body.get("code") == "invalid_credentials":
        expected = BadCredentials
    else:
        expected = EXPECTED_ERROR[sample["response"]["status"]]
    assert type(error) is expected
    assert error.message and error.message[-1] in ".!"
    assert "eyJ" not in error.message and "WRONG" not in error.message


def test_version_errors_are_normalised_to_lists() -> None:
    samples = dict(load_samples())
    error = error_for(recorded_response(samples["78_err_userstories_patch_stale_version.json"]))
    assert isinstance(error, ValidationFailed)
    assert error.fields == {"version": ["The version doesn't match with the current one"]}


def test_throttle_wait_comes_from_the_taiga_header() -> None:
    samples = dict(load_samples())
    error = error_for(recorded_response(samples["92_throttle_429_user_read.json"]))
    assert isinstance(error, RateLimited) and error.wait_seconds == 60
    assert str(error) == "Taiga is rate-limiting requests; try again in 60 s."


def test_both_401_shapes_are_unauthorized_with_a_readable_message() -> None:
    samples = dict(load_samples())
    expired = error_for(recorded_response(samples["17_err_expired_token_users_me.json"]))
    missing = error_for(recorded_response(samples["18_err_no_token_users_me.json"]))
    assert str(expired) == (
        "Your Taiga sign-in is no longer valid (Token is invalid or expired)."
    )
    assert "Authentication credentials were not provided." in str(missing)
