"""Applying plans of several sizes: one write at a time against the executor's adaptive limit,
and the limit against a Taiga that throttles.

Every plan creates a new sprint, its stories and their tasks (1 + S + S x T POSTs), proposed by
the real loop, applied by `agent.executor.apply_plan` with a SQLite ledger in a temp file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent.executor import apply_plan, record_approved_plan
from agent.proposal import Proposal
from agent.settings import Settings
from bench.peers import running_taiga, temp_database
from bench.report import Table, ms
from bench.scenarios import MINUTES, WEB, _alice, make_plan
from taiga.client import TaigaClient
from tests.peers.timed_taiga import Span, critical_path

SIZES = ((1, 3), (3, 3), (10, 5), (20, 5))
LATENCY = 0.050
# The throttling Taiga: a request arriving while this many are being handled gets a 429.
THROTTLE_ABOVE = 4
THROTTLE_WAIT = 0.1


@dataclass(frozen=True)
class Applied:
    wall: float
    posts: int
    depth: int
    in_flight: int  # most POSTs Taiga was handling at once


def most_at_once(spans: Sequence[Span]) -> int:
    edges = sorted([(s.start, 1) for s in spans] + [(s.end, -1) for s in spans])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


async def apply_once(
    proposal: Proposal, *, latency: float, concurrency: int, throttle: bool = False
) -> Applied:
    writes = proposal_writes(proposal)
    with temp_database() as db, running_taiga(latency) as taiga:
        if throttle:
            taiga.throttle_above(THROTTLE_ABOVE, wait_seconds=THROTTLE_WAIT)
        plan_id = await record_approved_plan(db, proposal, minutes=MINUTES, decided_by="bench")
        async with TaigaClient(taiga.api_url) as client:
            session = _alice(client, taiga)
            t0 = time.perf_counter()
            result = await apply_plan(
                db=db, plan_id=plan_id, taiga=session, web_url=WEB, concurrency=concurrency
            )
            t1 = time.perf_counter()
    if not result.complete or len(result.created) != writes:
        raise RuntimeError(f"apply_plan: {result.state}, {result.failed[:3]}")
    sent = taiga.spans(t0, t1, method="POST")
    return Applied(t1 - t0, len(sent), critical_path(sent), most_at_once(sent))


def proposal_writes(proposal: Proposal) -> int:
    return 1 + len(proposal.stories) + sum(len(s.tasks) for s in proposal.stories)


def fixed_depth(stories: int, tasks: int, concurrency: int) -> int:
    """Round trips with a fixed limit: the sprint, then the stories, then the tasks."""
    return 1 + math.ceil(stories / concurrency) + math.ceil(stories * tasks / concurrency)


async def bench_apply() -> Table:
    limit = Settings(_env_file=None).taiga_write_concurrency  # type: ignore[call-arg]
    table = Table(
        f"2. apply_plan at {LATENCY * 1000:g} ms Taiga latency: one write at a time (c=1) vs "
        f"the adaptive limit (up to TAIGA_WRITE_CONCURRENCY={limit})",
        ["plan / Taiga", "writes", "c=1", "adaptive", "speedup", "depth c=1", "depth",
         "fixed c=4 depth", "most at once"],
    )
    for stories, tasks in SIZES:
        proposal = await make_plan(stories, tasks)
        one = await apply_once(proposal, latency=LATENCY, concurrency=1)
        adaptive = await apply_once(proposal, latency=LATENCY, concurrency=limit)
        size = f"{stories}x{tasks}"
        speedup = one.wall / adaptive.wall
        table.add(
            f"{size} / keeps up", proposal_writes(proposal), ms(one.wall), ms(adaptive.wall),
            f"{speedup:.1f}x", one.depth, adaptive.depth, fixed_depth(stories, tasks, 4),
            adaptive.in_flight,
        )  # fmt: skip
        table.metric(f"apply_ms_{size}", adaptive.wall * 1000, "ms")
        table.metric(f"apply_sequential_ms_{size}", one.wall * 1000, "ms")
        table.metric(f"apply_speedup_{size}", speedup, "x")
        table.metric(f"apply_depth_{size}", adaptive.depth, "round trips")
    await _throttled_rows(table, limit)
    table.notes = [
        "depth: POST round trips on the critical path, from server-side overlaps; with a fixed "
        "limit c it is 1 + ceil(S/c) + ceil(S x T/c); the adaptive limit starts at 16 and grows "
        "by one after each full window without a 429 or 5xx.",
        f"throttling Taiga: a request arriving while {THROTTLE_ABOVE} are being handled gets a "
        f"429 with a {THROTTLE_WAIT:g} s wait; the limit halves on it. 429s = POSTs beyond the "
        "plan's writes (each throttled write is sent again; nothing is created twice).",
    ]
    return table


async def _throttled_rows(table: Table, limit: int) -> None:
    stories, tasks = SIZES[-1]
    proposal = await make_plan(stories, tasks)
    writes = proposal_writes(proposal)
    throttled = await apply_once(proposal, latency=LATENCY, concurrency=limit, throttle=True)
    fixed = await apply_once(proposal, latency=LATENCY, concurrency=THROTTLE_ABOVE)
    size = f"{stories}x{tasks}"
    table.add(
        f"{size} / throttles above {THROTTLE_ABOVE}", writes, "-", ms(throttled.wall), "-", "-",
        throttled.depth, "-", throttled.in_flight,
    )  # fmt: skip
    table.add(
        f"{size} / c={THROTTLE_ABOVE} fixed (no 429)", writes, "-", ms(fixed.wall), "-", "-",
        fixed.depth, "-", fixed.in_flight,
    )  # fmt: skip
    table.metric(f"apply_throttled_ms_{size}", throttled.wall * 1000, "ms")
    table.metric(f"apply_throttled_429s_{size}", throttled.posts - writes, "requests")
    table.metric(f"apply_throttled_depth_{size}", throttled.depth, "round trips")
    table.metric(f"apply_ideal_ms_{size}_c{THROTTLE_ABOVE}", fixed.wall * 1000, "ms")
