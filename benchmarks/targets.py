"""The performance targets, and whether a result meets them."""

from __future__ import annotations

from typing import Literal

import attrs

from .w1_fanout import MANY_WORKERS_SHARE_KEY
from .w6_scale import COST_GROWTH_KEY, growth_key
from .w7_scale_out import SPEEDUP_KEY
from .w9_million import COST_GROWTH_KEY as W9_COST_GROWTH_KEY
from .w9_million import PEAK_PER_TASK_KEY

#: Any storage.
ANY = "*"


@attrs.frozen(kw_only=True)
class Target:
    """A bound on a result's median (``on="value"``) or on its ratio to the baseline.

    :ivar op: ``">="``, ``"<="`` or ``"<"``.
    """

    on: Literal["value", "ratio"]
    op: Literal[">=", "<=", "<"]
    bound: float
    unit: str = ""

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        """Whether the bound holds; ``None`` when the number it is about is missing."""
        actual = value if self.on == "value" else ratio
        if actual is None:
            return None
        if self.op == ">=":
            return actual >= self.bound
        if self.op == "<=":
            return actual <= self.bound
        return actual < self.bound

    def describe(self) -> str:
        sign = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        if self.on == "ratio":
            return f"ratio {sign} {self.bound:g}"
        if self.unit in ("", "x"):
            return f"{sign} {self.bound:g}{self.unit}"
        return f"{sign} {self.bound:g} {self.unit}"


#: (workload, metric key, storage or ANY) -> target.
TARGETS: dict[tuple[str, str, str], Target] = {
    ("W1", "tasks_per_s", "memory"): Target(on="ratio", op=">=", bound=1.5),
    ("W1", "tasks_per_s", "sqlite"): Target(on="ratio", op=">=", bound=0.8),
    ("W1", "tasks_per_s", "postgres"): Target(on="ratio", op=">=", bound=0.5),
    ("W1", MANY_WORKERS_SHARE_KEY, ANY): Target(on="value", op=">=", bound=0.95, unit="x"),
    ("W2", "delay_p50_us", "memory"): Target(on="value", op="<=", bound=100, unit="µs"),
    ("W2", "delay_p50_us", "sqlite"): Target(on="value", op="<=", bound=1000, unit="µs"),
    ("W3", "runs_per_s", "memory"): Target(on="ratio", op=">=", bound=0.8),
    ("W3", "runs_per_s", "sqlite"): Target(on="ratio", op=">=", bound=0.4),
    ("W3", "runs_per_s", "postgres"): Target(on="ratio", op=">=", bound=0.1),
    ("W4", "tasks_per_s", "memory"): Target(on="ratio", op=">=", bound=0.8),
    ("W4", "tasks_per_s", "sqlite"): Target(on="ratio", op=">=", bound=0.7),
    ("W4", "tasks_per_s", "postgres"): Target(on="ratio", op=">=", bound=0.5),
    ("W5", "lateness_p99_ms", "memory"): Target(on="value", op="<=", bound=2, unit="ms"),
    ("W5", "lateness_p99_ms", "sqlite"): Target(on="value", op="<=", bound=3, unit="ms"),
    ("W5", "lateness_p99_ms", "postgres"): Target(on="value", op="<=", bound=5, unit="ms"),
    ("W6", COST_GROWTH_KEY, ANY): Target(on="value", op="<=", bound=1.25, unit="x"),
    ("W7", SPEEDUP_KEY, "postgres"): Target(on="value", op=">=", bound=2, unit="x"),
    ("W8", "tasks_per_s", "memory"): Target(on="ratio", op=">=", bound=0.8),
    ("W8", "tasks_per_s", "sqlite"): Target(on="ratio", op=">=", bound=0.4),
    ("W9", PEAK_PER_TASK_KEY, ANY): Target(on="value", op="<=", bound=1024, unit="B/task"),
    ("W9", W9_COST_GROWTH_KEY, ANY): Target(on="value", op="<=", bound=1.25, unit="x"),
}

#: RSS growth per task, at every W6 size.
RSS_GROWTH_TARGET = Target(on="value", op="<", bound=2048, unit="B/task")


def target_for(workload: str, metric: str, storage: str) -> Target | None:
    """The target of one row of results, if it has one."""
    if workload == "W6" and metric.startswith(growth_key(0).split("@")[0] + "@"):
        return RSS_GROWTH_TARGET
    return TARGETS.get((workload, metric, storage)) or TARGETS.get((workload, metric, ANY))
