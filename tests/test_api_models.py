"""The HTTP API's models keep the caller's tokens out of reprs while still answering them."""

from __future__ import annotations

from bot.api.models import AgentRunResponse, Artifacts, RefreshedTokens


def test_refreshed_tokens_are_answered_but_never_shown_in_a_repr() -> None:
    tokens = RefreshedTokens(auth_token="new-access-secret", refresh="new-refresh-secret")
    response = AgentRunResponse(summary="done", artifacts=Artifacts(), tokens=tokens)

    shown = repr(response) + str(response) + repr(tokens)

    assert "secret" not in shown
    assert response.model_dump()["tokens"] == {
        "auth_token": "new-access-secret",
        "refresh": "new-refresh-secret",
    }
