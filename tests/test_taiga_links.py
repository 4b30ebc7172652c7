"""Links into Taiga's web UI."""

from __future__ import annotations

from taiga import sprint_url, story_url, task_url


def test_links_point_at_the_web_ui_story_task_and_taskboard() -> None:
    web = "https://tree.taiga.io/"
    assert story_url(web, "alice-peer-client-test", 3) == (
        "https://tree.taiga.io/project/alice-peer-client-test/us/3"
    )
    assert task_url(web, "alice-peer-client-test", 8) == (
        "https://tree.taiga.io/project/alice-peer-client-test/task/8"
    )
    assert sprint_url("https://taiga.example.com", "p", "sprint-6") == (
        "https://taiga.example.com/project/p/taskboard/sprint-6"
    )
