"""Repository functions: sync, `session` first, keyword-only rest; call them inside `Database.run`.

Concurrency rules that the rest of the bot relies on:
- `transition_plan` is one conditional UPDATE: exactly one caller moves a plan out of a state;
  out of `executing` / `undoing` only the lease holder, or anyone once the lease has lapsed
  (`leases`); `renew_lease` extends a lease only for its holder.
- `claim_actions`, `first_delivery`, `create_plan` with an idempotency key, `save_link` and
  `set_channel_project` are one `INSERT ... ON CONFLICT` each (`inserts`), so concurrent
  callers in other processes agree on one row.
- `claim_drafting` takes one of the workspace's slots with `INSERT ... ON CONFLICT`, so replicas
  agree on who drafts (one per user per channel, at most the cap per workspace).
- `replace_tokens` is a compare-and-set on the stored auth token (row locked on PostgreSQL).
"""

from storage.repositories.channels import get_channel_project, set_channel_project
from storage.repositories.connect_links import (
    ConnectLinkView,
    LinkState,
    claim_connect_link,
    count_failed_attempt,
    create_connect_link,
    prune_connect_links,
    read_connect_link,
)
from storage.repositories.drafting import (
    AlreadyDrafting,
    Claimed,
    DraftingOutcome,
    WorkspaceFull,
    claim_drafting,
    drafting_in_thread,
    release_drafting,
    release_drafting_in_thread,
)
from storage.repositories.events import first_delivery, prune_slack_events
from storage.repositories.home import projects_of_channels, recent_plans
from storage.repositories.leases import LeaseHolderMissing, earliest_lease_end, renew_lease
from storage.repositories.ledger import (
    LedgerEntry,
    claim_actions,
    complete_action,
    ledger_for_plan,
    retake_actions,
)
from storage.repositories.links import (
    StoredTokens,
    TaigaLinkView,
    delete_link,
    get_link,
    linked_taiga_users,
    replace_tokens,
    rotate_all_tokens,
    save_link,
)
from storage.repositories.plans import (
    IdempotencyKeyTaken,
    create_plan,
    get_plan,
    latest_plan_in_thread,
    next_sweep_due,
    plan_for_idempotency_key,
    plans_to_sweep,
    transition_plan,
    update_plan,
)
from storage.repositories.revisions import (
    drafted_from,
    revisions_of,
    store_first_version,
    store_new_version,
)

__all__ = [
    "AlreadyDrafting",
    "Claimed",
    "ConnectLinkView",
    "DraftingOutcome",
    "IdempotencyKeyTaken",
    "LeaseHolderMissing",
    "LedgerEntry",
    "LinkState",
    "StoredTokens",
    "TaigaLinkView",
    "WorkspaceFull",
    "claim_actions",
    "claim_connect_link",
    "claim_drafting",
    "complete_action",
    "count_failed_attempt",
    "create_connect_link",
    "create_plan",
    "delete_link",
    "drafted_from",
    "drafting_in_thread",
    "earliest_lease_end",
    "first_delivery",
    "get_channel_project",
    "get_link",
    "get_plan",
    "latest_plan_in_thread",
    "ledger_for_plan",
    "linked_taiga_users",
    "next_sweep_due",
    "plan_for_idempotency_key",
    "plans_to_sweep",
    "projects_of_channels",
    "prune_connect_links",
    "prune_slack_events",
    "read_connect_link",
    "recent_plans",
    "release_drafting",
    "release_drafting_in_thread",
    "renew_lease",
    "replace_tokens",
    "retake_actions",
    "revisions_of",
    "rotate_all_tokens",
    "save_link",
    "set_channel_project",
    "store_first_version",
    "store_new_version",
    "transition_plan",
    "update_plan",
]
