"""Results as rows: the terminal table and the JSON files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

#: The storage column of baseline rows.
BASELINE = "asyncio"


@attrs.frozen(kw_only=True)
class Row:
    """One metric of one workload on one storage (or of its baseline).

    :ivar values: one per repetition.
    :ivar median: of ``values``; ``None`` when every repetition failed.
    :ivar baseline: the baseline's median of the same metric, if there is one.
    :ivar ratio: ppacer/baseline for throughput, baseline/ppacer for latency, so above 1
        always means faster than plain asyncio.
    :ivar met: ``None`` when the row has no target or no number.
    """

    workload: str
    title: str
    storage: str
    metric: str
    label: str
    unit: str
    higher_is_better: bool
    values: tuple[float, ...] = ()
    median: float | None = None
    baseline: float | None = None
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"values": list(self.values)}


def format_number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    size = abs(value)
    if size >= 1000 or value.is_integer():
        text = f"{value:,.0f}"
    elif size >= 100:
        text = f"{value:.0f}"
    elif size >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    if unit == "x":
        return f"{text}x"
    return f"{text} {unit}" if unit else text


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"


def _outcome(row: Row) -> str:
    if row.error is not None:
        return "ERROR"
    if row.met is None:
        return ""
    return "met" if row.met else "MISSED"


def render_table(rows: Sequence[Row], notes: Sequence[str] = ()) -> str:
    """A plain-text table: one line per row, errors and ``notes`` (skipped workloads)
    listed below it."""
    header = ("workload", "storage", "metric", "median", "baseline", "ratio", "target", "")
    lines = [header]
    for row in rows:
        lines.append(
            (
                f"{row.workload} {row.title}",
                row.storage,
                row.label,
                format_number(row.median, row.unit) if row.error is None else "error",
                format_number(row.baseline, row.unit) if row.baseline is not None else "",
                format_ratio(row.ratio),
                row.target or "",
                _outcome(row),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {3, 4, 5}

    def fmt(line: Sequence[str]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        return "  ".join(cells).rstrip()

    out = [fmt(lines[0]), "  ".join("-" * w for w in widths if w).rstrip()]
    previous = None
    for row, line in zip(rows, lines[1:], strict=True):
        if previous is not None and row.workload != previous:
            out.append("")
        previous = row.workload
        out.append(fmt(line))
    errors = [row for row in rows if row.error is not None]
    seen: set[tuple[str, str]] = set()
    for row in errors:
        if (row.workload, row.storage) not in seen:
            seen.add((row.workload, row.storage))
            out.append(f"error: {row.workload} on {row.storage}: {row.error}")
    out += [f"note: {note}" for note in notes]
    met = sum(1 for row in rows if row.met is True)
    missed = sum(1 for row in rows if row.met is False)
    out.append(f"targets: {met} met, {missed} missed")
    return "\n".join(out)


def write_json(report: dict[str, Any], out: Path, started: datetime) -> Path:
    """Write ``<timestamp>.json`` and a copy as ``latest.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.copyfile(path, out / "latest.json")
    return path
