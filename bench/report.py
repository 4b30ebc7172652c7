"""Small statistics, plain-text tables and the machine-readable figures of the benchmark."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


@dataclass(frozen=True)
class Metric:
    """One figure as data: printed as a JSON line `{"metric", "value", "unit"}`."""

    name: str
    value: float
    unit: str

    def json_line(self) -> str:
        value = round(self.value, 3) if isinstance(self.value, float) else self.value
        return json.dumps({"metric": self.name, "value": value, "unit": self.unit})


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def metric(self, name: str, value: float, unit: str) -> None:
        self.metrics.append(Metric(name, value, unit))

    def render(self) -> str:
        widths = [
            max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
            for i, h in enumerate(self.headers)
        ]

        def line(cells: Sequence[str]) -> str:
            # First column left-aligned (labels), the rest right-aligned (figures).
            parts = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        out = [self.title, "=" * len(self.title), line(self.headers)]
        out.append("  ".join("-" * w for w in widths))
        out += [line(r) for r in self.rows]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)
