"""`python -m bench [propose apply agent-run slack-ack]`: run the scenarios (default: all),
bounded, and print the figures as plain text.

Exit status 0 when every scenario ran, 1 when one failed or ran out of time, 2 when the whole run
hit its hard limit (a watchdog ends the process even if something blocks the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime

from bench import apply, scenarios, server
from bench.report import Table

OVERALL_SECONDS = 165.0
SCENARIO_SECONDS = 100.0
LATENCIES = (0.0, 0.050)

Scenario = tuple[str, Callable[[], Awaitable[Table]]]

SCENARIOS: list[Scenario] = [
    ("propose", lambda: scenarios.bench_propose(LATENCIES, runs=3)),
    ("apply", apply.bench_apply),
    ("agent-run", lambda: scenarios.bench_agent_run(LATENCIES, runs=10)),
    ("server", lambda: server.bench_server(burst=200, concurrency=50, plans=50, model_delay=2.0)),
]


def _cores() -> str:
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return str(total)
    return str(total) if usable == total else f"{usable} usable of {total}"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def header() -> str:
    return "\n".join(
        [
            "Taiga Planner benchmark (loopback peers: fake Taiga, fake Anthropic, fake Slack)",
            f"date:    {datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"python:  {platform.python_version()} ({platform.python_implementation()})",
            f"machine: {platform.system()} {platform.machine()}, {_cores()} cores, "
            f"load average {_load()} (other work on the machine skews the 0 ms rows most)",
        ]
    )


async def run_all(chosen: list[Scenario]) -> int:
    failures = 0
    async with asyncio.timeout(OVERALL_SECONDS):
        for name, scenario in chosen:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(SCENARIO_SECONDS):
                    table = await scenario()
            except TimeoutError:
                failures += 1
                print(f"\n{name}: did not finish within {SCENARIO_SECONDS:g} s\n", flush=True)
                continue
            except Exception:
                failures += 1
                print(f"\n{name}: failed\n{traceback.format_exc()}", flush=True)
                continue
            took = time.perf_counter() - started
            table.metric(f"bench_{name.replace('-', '_')}_s", took, "s")
            print(f"\n{table.render()}\n  ({name} took {took:.1f} s)\n", flush=True)
            print("\n".join(m.json_line() for m in table.metrics), flush=True)
    return 1 if failures else 0


def _watchdog() -> None:
    print(f"\nbench: hard limit of {OVERALL_SECONDS + 15:g} s reached; stopping.", flush=True)
    for process in list(server.RUNNING):
        process.kill()
    os._exit(2)


def main(argv: list[str]) -> int:
    names = [name for name, _ in SCENARIOS]
    unknown = [a for a in argv if a not in names]
    if unknown:
        print(f"usage: python -m bench [{' '.join(names)}]  (default: all)", file=sys.stderr)
        return 2
    chosen = [s for s in SCENARIOS if not argv or s[0] in argv]
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    timer = threading.Timer(OVERALL_SECONDS + 15, _watchdog)
    timer.daemon = True
    timer.start()
    print(header(), flush=True)
    started = time.perf_counter()
    try:
        status = asyncio.run(run_all(chosen))
    except TimeoutError:
        print(f"\nbench: stopped at the overall limit of {OVERALL_SECONDS:g} s.", flush=True)
        status = 2
    finally:
        timer.cancel()
    print(f"\ntotal {time.perf_counter() - started:.1f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
