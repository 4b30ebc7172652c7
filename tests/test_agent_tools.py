from __future__ import annotations

import json

import pytest

from agent.tools import (
    TOOLS,
    ToolError,
    anthropic_tool_params,
    offered_tools,
    parse_input,
)

BOB_VIEWER = frozenset(
    {
        "view_milestones",
        "view_project",
        "view_us",
        "view_tasks",
        "view_wiki_pages",
        "view_wiki_links",
        "view_issues",
        "view_epics",
    }
)
WRITER = BOB_VIEWER | {"add_us", "add_task", "add_milestone"}


def test_registry_has_the_six_tools_and_no_destructive_one() -> None:
    # No read tool whose answer the first message already holds (project, sprints, members).
    assert set(TOOLS) == {
        "taiga_get_milestone_by_name",
        "taiga_list_user_stories",
        "taiga_create_milestone",
        "taiga_create_user_story",
        "taiga_create_task",
        "taiga_move_user_story",
    }
    for name in TOOLS:
        assert not any(
            word in name for word in ("delete", "update", "modify", "admin", "member_add")
        )


def test_each_tool_declares_kind_and_permission() -> None:
    kinds = {name: (spec.kind, spec.permission) for name, spec in TOOLS.items()}
    assert kinds["taiga_create_user_story"] == ("write", "add_us")
    assert TOOLS["taiga_create_user_story"].extra_permissions == ("add_task",)
    assert kinds["taiga_create_task"] == ("write", "add_task")
    assert kinds["taiga_create_milestone"] == ("write", "add_milestone")
    assert kinds["taiga_move_user_story"] == ("write", "modify_us")
    assert kinds["taiga_list_user_stories"] == ("read", "view_us")
    assert kinds["taiga_get_milestone_by_name"] == ("read", "view_milestones")


def test_view_only_user_is_offered_no_write_tool() -> None:
    offered = offered_tools(BOB_VIEWER)
    assert {spec.kind for spec in offered} == {"read"}
    assert len(offered) == 2


def test_writer_is_offered_every_tool_and_a_user_without_add_task_gets_no_task_tool() -> None:
    assert len(offered_tools(WRITER)) == 5
    names = [s.name for s in offered_tools(WRITER - {"add_task"})]
    assert "taiga_create_task" not in names
    assert "taiga_create_user_story" in names


def test_no_permission_offers_nothing() -> None:
    assert offered_tools(frozenset()) == []


def test_schemas_are_generated_from_the_input_models_and_flat() -> None:
    params = anthropic_tool_params(offered_tools(WRITER))
    for param in params:
        spec = TOOLS[param["name"]]
        assert param["description"] == spec.description
        schema = param["input_schema"]
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert "$ref" not in json.dumps(schema)
    story = next(p for p in params if p["name"] == "taiga_create_user_story")["input_schema"]
    assert story["properties"]["subject"]["maxLength"] == 500
    assert story["properties"]["description"]["maxLength"] == 10000
    assert story["properties"]["tasks"]["maxItems"] == 20
    assert story["properties"]["tasks"]["items"]["required"] == ["subject"]
    assert story["required"] == ["subject"]


def test_only_the_last_tool_carries_a_cache_breakpoint() -> None:
    params = anthropic_tool_params(offered_tools(WRITER))
    assert params[-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in p for p in params[:-1])


def test_story_input_with_tasks_is_accepted() -> None:
    args = parse_input(
        TOOLS["taiga_create_user_story"],
        {"subject": "As a coach, I can export", "tasks": [{"subject": "Add button"}]},
    )
    assert args.tasks[0].subject == "Add button"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "subject: Field required"),
        ({"subject": 12}, "subject: Input should be a valid string"),
        ({"subject": ""}, "subject: String should have at least 1 character"),
        ({"subject": "x" * 501}, "subject: String should have at most 500 characters"),
        ({"subject": "ok", "tasks": "do it"}, "tasks: Input should be a valid list"),
        ({"subject": "ok", "tasks": [{}]}, "tasks.0.subject: Field required"),
        ({"subject": "ok", "tasks": [{"subject": "t"}] * 21}, "tasks: List should have at most 20"),
        ({"subject": "ok", "milestone": 3}, "milestone: Extra inputs are not permitted"),
    ],
)
def test_invalid_story_input_names_the_problem(raw: dict[str, object], expected: str) -> None:
    with pytest.raises(ToolError) as caught:
        parse_input(TOOLS["taiga_create_user_story"], raw)
    assert str(caught.value).startswith("Invalid input for taiga_create_user_story: ")
    assert expected in str(caught.value)


def test_task_parent_is_an_id_or_a_proposed_reference() -> None:
    spec = TOOLS["taiga_create_task"]
    assert parse_input(spec, {"user_story": 17, "subject": "t"}).user_story == 17  # type: ignore[attr-defined]
    assert (
        parse_input(spec, {"user_story": "new-story-2", "subject": "t"}).user_story == "new-story-2"
    )  # type: ignore[attr-defined]
    with pytest.raises(ToolError):
        parse_input(spec, {"user_story": "story one", "subject": "t"})
