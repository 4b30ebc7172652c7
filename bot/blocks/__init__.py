"""Block Kit rendering for the planner's messages.

Each renderer returns a `SlackMessage`: `blocks` (JSON-ready dicts built with
`slack_sdk.models.blocks`) and a short fallback `text` for notifications; pass both with
`client.chat_update(channel=..., ts=..., **message.as_kwargs())`.

Every message stays inside Slack's limits whatever it is given: at most 50 blocks, section text
≤ 3000 characters, header ≤ 150, button text ≤ 75, and a total block text under Slack's
(undocumented, ~12 000 character) `msg_blocks_too_long` threshold. Long plans are condensed
(descriptions shortened, then dropped, then task lists collapsed to counts, the last stories
first) and finally cut with "…and N more stories", never refused.

All user- or model-derived text goes through `escape_mrkdwn`; user ids are rendered as
mentions only when they look like Slack user ids.

`kit` holds the limits and small builders, `fitting` the condensing of long lists, `actions`
the buttons and their action ids, `proposal`, `result` and `notices` the messages, `login`
the `/taiga login` modal and `edit` a proposal's Edit modal.
"""

from bot.blocks.actions import ACTION_APPROVE, ACTION_REJECT, ACTION_RETRY
from bot.blocks.kit import SlackMessage
from bot.blocks.notices import error_blocks, expired_blocks, rejected_blocks, status_blocks
from bot.blocks.proposal import proposal_blocks
from bot.blocks.result import CreatedLike, FailedLike, ResultLike, result_blocks

__all__ = [
    "ACTION_APPROVE",
    "ACTION_REJECT",
    "ACTION_RETRY",
    "CreatedLike",
    "FailedLike",
    "ResultLike",
    "SlackMessage",
    "error_blocks",
    "expired_blocks",
    "proposal_blocks",
    "rejected_blocks",
    "result_blocks",
    "status_blocks",
]
