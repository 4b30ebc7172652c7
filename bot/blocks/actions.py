"""The buttons on the planner's messages, and the action ids the listeners route on."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ConfirmObject

from bot.blocks.kit import button

ACTION_APPROVE = "plan_approve"
ACTION_REJECT = "plan_reject"
ACTION_RETRY = "plan_retry"
ACTIONS_BLOCK_ID = "plan_actions"


def decision_buttons(plan_id: str, *, can_approve: bool) -> ActionsBlock:
    """Approve (unless there is nothing to approve) and Reject, with a confirm."""
    reject = button(
        "Reject",
        ACTION_REJECT,
        plan_id,
        style="danger",
        confirm=ConfirmObject(
            title="Reject this plan?",
            text="Nothing will be written to Taiga.",
            confirm="Reject",
            deny="Keep it",
            style="danger",
        ),
    )
    elements = [reject]
    if can_approve:
        elements.insert(0, button("Approve", ACTION_APPROVE, plan_id, style="primary"))
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=elements)


def retry_button(plan_id: str) -> ActionsBlock:
    retry = button("Retry what is missing", ACTION_RETRY, plan_id, style="primary")
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=[retry])
