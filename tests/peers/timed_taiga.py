"""`TimedTaiga`: the fake Taiga, also recording when it handled each request, and
`critical_path`: how many round trips deep a run was, read off those times.

With injected latency (`set_latency`), requests sent at once overlap on the server and count as
one round; a request sent only after another was answered starts a new one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.peers.fake_taiga import FakeTaiga, RecordedRequest


@dataclass(frozen=True)
class Span:
    """One request as the fake Taiga handled it (perf_counter seconds)."""

    method: str
    path: str
    start: float
    end: float


class TimedTaiga(FakeTaiga):
    """`FakeTaiga` that also records when each request started and finished being handled."""

    def __init__(self) -> None:
        super().__init__()
        self._span_lock = threading.Lock()
        self._spans: list[Span] = []

    def handle(self, request: RecordedRequest, raw_path: str) -> Any:
        start = time.perf_counter()
        try:
            return super().handle(request, raw_path)
        finally:
            span = Span(request.method, request.path, start, time.perf_counter())
            with self._span_lock:
                self._spans.append(span)

    def spans(
        self, since: float = 0.0, until: float = math.inf, *, method: str | None = None
    ) -> list[Span]:
        """Requests that started within [since, until], optionally of one HTTP method."""
        with self._span_lock:
            spans = list(self._spans)
        return [
            s for s in spans if since <= s.start <= until and (method is None or s.method == method)
        ]


def critical_path(spans: Sequence[Span]) -> int:
    """Round trips on the longest chain of requests each sent after the previous one ended.

    Requests that overlap in time count once; meaningful only with injected latency (at 0 ms
    concurrent requests may be handled one after the other and look sequential).
    """
    ordered = sorted(spans, key=lambda s: s.start)
    depth: list[int] = []
    for i, span in enumerate(ordered):
        before = [depth[j] for j in range(i) if ordered[j].end <= span.start]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)
