"""``python -m benchmarks.peers [--peers apscheduler,prefect,dagster,airflow] [--repeat N]
[--storage memory,sqlite,postgres] [--out FILE]``.

Runs ppacer-async and plain asyncio, then each peer through its script
(``benchmarks/peers/<peer>.sh``, which makes the peer's virtualenv on first use), then
ppacer-async and plain asyncio again, so that the two ends show how the machine's load
moved while the peers ran. Prints one table (tasks per second) and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._common import POSTGRES_DSN_ENV
from ..machine import describe_machine

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
DEFAULT_OUT = PROJECT_ROOT / "benchmarks" / "results" / "peers.json"
PEERS = ("apscheduler", "prefect", "dagster", "airflow")
WORKLOADS = ("W1", "W2", "W3")
#: A peer whose script has not printed its result by then is stopped and marked failed.
PEER_TIMEOUT = 3600.0


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _run(command: list[str], timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    """Run one script; its JSON lines are its results, anything else is progress."""
    try:
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return [], f"did not finish within {timeout:.0f} s"
    found: list[dict[str, Any]] = []
    for line in done.stdout.decode(errors="replace").splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    if done.returncode != 0 or not found:
        tail = [
            line
            for line in done.stderr.decode(errors="replace").strip().splitlines()
            if "is ignored: it is neither a file nor a directory" not in line
        ][-8:]
        return found, f"exited {done.returncode}: " + " | ".join(tail)
    return found, None


def run_own(storages: Sequence[str], when: str) -> list[dict[str, Any]]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.peers.run_ppacer",
        "--storage",
        ",".join(storages),
        "--repeat",
        "5",
    ]
    load = load_average()
    started = time.perf_counter()
    found, error = _run(command, PEER_TIMEOUT)
    for result in found:
        result.update(when=when, load_average=load, seconds=time.perf_counter() - started)
    if error is not None:
        found.append({"peer": "ppacer-async", "when": when, "error": error, "modes": []})
    return found


def run_peer(name: str, repeat: int) -> dict[str, Any]:
    command = ["bash", str(HERE / f"{name}.sh"), "--repeat", str(repeat)]
    load = load_average()
    started = time.perf_counter()
    found, error = _run(command, PEER_TIMEOUT)
    result: dict[str, Any] = found[-1] if found else {"peer": name, "modes": []}
    result.update(when="peers", load_average=load, seconds=time.perf_counter() - started)
    if error is not None:
        result["error"] = error
    return result


def render(results: Sequence[dict[str, Any]]) -> str:
    header = ("peer", "version", "mode", *WORKLOADS, "load (1 min)", "note")
    lines: list[tuple[str, ...]] = [header]
    for result in results:
        load = result.get("load_average") or []
        load_text = f"{load[0]:.1f}" if load else ""
        label = result["peer"] + (" (again)" if result.get("when") == "end" else "")
        for mode in result.get("modes") or [{}]:
            cells = tuple(
                f"{mode[key]:,.0f}" if isinstance(mode.get(key), int | float) else "-"
                for key in WORKLOADS
            )
            note = mode.get("note") or result.get("error") or ""
            lines.append(
                (
                    label,
                    str(result.get("version") or ""),
                    str(mode.get("mode") or ""),
                    *cells,
                    load_text,
                    note[:120],
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        padded = [
            c.rjust(widths[i]) if 3 <= i <= 6 else c.ljust(widths[i]) for i, c in enumerate(line)
        ]
        out.append("  ".join(padded).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("tasks per second: W1 502 tasks (1 root, 500 leaves, 1 join), W2 a chain of 100,")
    out.append("W3 100 runs of a 3-task chain (300 tasks); higher is better")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument("--peers", type=_csv, default=list(PEERS), help=",".join(PEERS))
    parser.add_argument("--repeat", type=int, default=1, help="repetitions per peer (median)")
    parser.add_argument("--storage", type=_csv, default=None, help="ppacer-async's storages")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer {', '.join(unknown)}; use {','.join(PEERS)}")
    if args.storage is None:
        args.storage = ["memory", "sqlite"] + (
            ["postgres"] if os.environ.get(POSTGRES_DSN_ENV) else []
        )
    started = datetime.now(UTC)
    results = run_own(args.storage, "start")
    for name in args.peers:
        print(f"{name}: running (first use installs it)", file=sys.stderr, flush=True)
        results.append(run_peer(name, args.repeat))
        print(render(results[-1:]), file=sys.stderr, flush=True)
    results += run_own(args.storage, "end")
    print(render(results))
    report = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": describe_machine(),
        "sizes": {"W1": "1 root, 500 leaves, 1 join", "W2": "chain of 100", "W3": "100 x 3"},
        "unit": "tasks per second",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON: {args.out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
