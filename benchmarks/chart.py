"""The chart: every result that has a baseline, as a ratio to it, per workload and storage;
and the W7 speed-up, a ratio in itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from .report import BASELINE, Row, format_ratio
from .targets import target_for
from .w7_scale_out import DEFAULT_SPEEDUP_KEY, SPEEDUP_KEY

#: Bar colours per storage.
COLOURS = {"memory": "#4c72b0", "sqlite": "#55a868", "postgres": "#c44e52"}

#: Results that are ratios in themselves (3 serving processes against 1), drawn as they
#: are beside the ratios to the baseline.
OWN_RATIOS = frozenset({("W7", SPEEDUP_KEY), ("W7", DEFAULT_SPEEDUP_KEY)})

INSTALL_HINT = (
    "matplotlib is not installed, so no chart was drawn (the table and JSON are written); "
    "install it with: pip install -e '.[bench]'  (or: pip install matplotlib)"
)


def draw_chart(rows: Sequence[Row], path: Path, title: str) -> Literal["drawn", "empty", "missing"]:
    """Draw ``path`` (PNG) unless matplotlib is ``"missing"`` or no row has a ratio
    (``"empty"``).

    Bars are ratios to plain asyncio (above 1: faster than the baseline), and the
    ``OWN_RATIOS`` as they are, on a log scale so that 0.05 and 1 are both readable;
    their targets are drawn as black markers.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "missing"

    plotted = [r for r in rows if _ratio(r) is not None and r.storage != BASELINE]
    groups = list(dict.fromkeys((r.workload, r.metric) for r in plotted))
    storages = [s for s in COLOURS if any(r.storage == s for r in plotted)]
    if not groups or not storages:
        return "empty"

    width = 0.8 / len(storages)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.8))
    labels = []
    legend: set[str] = set()
    by_key = {(r.workload, r.metric, r.storage): r for r in plotted}
    for g, (workload, metric) in enumerate(groups):
        head = next(r for r in plotted if (r.workload, r.metric) == (workload, metric))
        inverse = "" if head.higher_is_better else "\n(baseline/ppacer)"
        labels.append(f"{workload} {head.title}\n{head.label} ({head.unit}){inverse}")
        for s, storage in enumerate(storages):
            row = by_key.get((workload, metric, storage))
            ratio = None if row is None else _ratio(row)
            if row is None or ratio is None:
                continue
            x = g - 0.4 + width * (s + 0.5)
            ax.bar(
                x,
                ratio,
                width * 0.9,
                color=COLOURS[storage],
                label=None if storage in legend else storage,
            )
            legend.add(storage)
            ax.annotate(
                format_ratio(ratio),
                (x, ratio),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
            target = target_for(workload, metric, storage)
            own = (workload, metric) in OWN_RATIOS
            if target is not None and (target.on == "ratio" or own):
                ax.plot(
                    x,
                    target.bound,
                    marker="_",
                    markersize=22,
                    markeredgewidth=2.5,
                    color="black",
                    zorder=3,
                    label=None if "target" in legend else "target",
                )
                legend.add("target")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--", zorder=0)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), labels, fontsize=8)
    ax.set_ylabel("ratio to plain asyncio, W7 to 1 process (higher is better)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return "drawn"


def _ratio(row: Row) -> float | None:
    """What the chart draws for ``row``: its ratio to the baseline, or its median if it
    is a ratio in itself."""
    if (row.workload, row.metric) in OWN_RATIOS:
        return row.median if row.error is None else None
    return row.ratio
