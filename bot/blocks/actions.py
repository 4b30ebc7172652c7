"""The buttons on the planner's messages, and the action ids the listeners route on."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject

from bot.blocks.kit import button

ACTION_APPROVE = "plan_approve"
ACTION_REJECT = "plan_reject"
ACTION_RETRY = "plan_retry"
ACTION_EDIT = "plan_edit"
ACTION_VIEW = "plan_view"
ACTION_PICK = "plan_pick"  # a prefix: each checkbox group's action id is "plan_pick:<n>"
ACTION_UNDO = "plan_undo"  # on an applied plan's result: delete what it created
ACTION_VIEW_PAGE = "plan_view_page"  # Next / Previous in the full-plan modal (value: the page)
ACTIONS_BLOCK_ID = "plan_actions"


def plan_ref(plan_id: str, version: int) -> str:
    """A button's value: the plan and the version of its proposal the button was shown with."""
    return f"{plan_id}:{version}"


def parse_plan_ref(value: str) -> tuple[str, int | None]:
    """(plan id, version) from a button's value; version None on messages from before versions."""
    plan_id, _, version = value.partition(":")
    # ASCII digits only: "²" is a digit to `isdigit` but not to `int`.
    return plan_id, int(version) if version.isascii() and version.isdigit() else None


def decision_buttons(
    plan_id: str,
    version: int,
    *,
    can_approve: bool,
    can_edit: bool = False,
    approve_note: str = "",
) -> ActionsBlock:
    """Approve (unless there is nothing to approve; its confirm says `approve_note`), View full
    plan, Edit (when there is something to edit) and Reject (with a confirm); each button
    carries the version it was shown with."""
    value = plan_ref(plan_id, version)
    reject = button(
        "Reject",
        ACTION_REJECT,
        value,
        style="danger",
        confirm=ConfirmObject(
            title="Reject this plan?",
            text="Nothing will be written to Taiga.",
            confirm="Reject",
            deny="Keep it",
            style="danger",
        ),
    )
    elements = [button("Edit", ACTION_EDIT, value), reject] if can_edit else [reject]
    if can_approve:
        confirm = ConfirmObject(
            title="Write this plan to Taiga?", text=approve_note or "Write the plan to Taiga.",
            confirm="Approve", deny="Not yet",
        )
        elements[:0] = [
            button("Approve", ACTION_APPROVE, value, style="primary", confirm=confirm),
            button("View full plan", ACTION_VIEW, value),
        ]
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=elements)


def retry_button(plan_id: str) -> ActionsBlock:
    retry = button("Retry what is missing", ACTION_RETRY, plan_id, style="primary")
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=[retry])


def result_buttons(
    plan_id: str, *, retry: bool, undo: bool, undo_minutes: float
) -> ActionsBlock | None:
    """A result's buttons: Retry while anything is missing, Undo once something was created
    (its confirm names the `undo_minutes` it is offered for); None when neither applies."""
    elements = []
    if retry:
        elements.append(button("Retry what is missing", ACTION_RETRY, plan_id, style="primary"))
    if undo:
        elements.append(undo_button(plan_id, "Undo", undo_minutes))
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=elements) if elements else None


def undo_button(plan_id: str, label: str, undo_minutes: float | None = None) -> ButtonElement:
    """Undo (or Retry undo) with a confirm; `undo_minutes` names how long it is offered."""
    text = "Deletes the sprint, stories and tasks this plan created, except those someone changed"
    text += " in Taiga since"
    if undo_minutes is not None:
        text += f" (possible for {undo_minutes:g} minutes after the plan was applied)"
    confirm = ConfirmObject(
        title="Undo this plan?", text=text + ".", confirm="Undo", deny="Keep them", style="danger"
    )
    return button(label, ACTION_UNDO, plan_id, style="danger", confirm=confirm)
