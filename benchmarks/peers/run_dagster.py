"""W1-W3 through Dagster, ``execute_in_process`` on a ``DagsterInstance`` on SQLite (a
fresh ``DagsterInstance.local_temp()``, Dagster's default local storage) and on an
ephemeral (in-memory) instance. Run by ``dagster.sh`` inside Dagster's own virtualenv;
prints one JSON line.

Each task is a no-op op; dependencies are ``Nothing`` inputs. W1 is a job with the root,
500 leaves and the join; W2 a job of 100 ops in a line; W3 100 runs (one after another:
``execute_in_process`` runs to the end) of a 3-op job. Building the jobs is not timed.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

from dagster import DagsterInstance, In, JobDefinition, Nothing, OpDefinition, job, op

W1_LEAVES, W2_LENGTH, W3_RUNS = 500, 100, 100
#: Dagster logs every step event to the console at DEBUG by default; ppacer-async's
#: per-task log lines are kept at WARNING in the benchmarks, so are Dagster's.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def make_op(name: str, *, after: bool) -> OpDefinition:
    if after:

        @op(name=name, ins={"after": In(Nothing)})
        def waiting() -> None:
            pass

        return waiting

    @op(name=name)
    def first() -> None:
        pass

    return first


def fan_out_job() -> JobDefinition:
    root = make_op("root", after=False)
    leaves = [make_op(f"leaf_{i}", after=True) for i in range(W1_LEAVES)]
    join = make_op("join", after=True)

    @job(name="w1_fan_out")
    def fan_out() -> None:
        started = root()
        join(after=[leaf(after=started) for leaf in leaves])

    return fan_out


def chain_job(length: int, name: str) -> JobDefinition:
    ops = [make_op(f"t_{i}", after=i > 0) for i in range(length)]

    @job(name=name)
    def chain() -> None:
        previous = ops[0]()
        for nxt in ops[1:]:
            previous = nxt(after=previous)

    return chain


def _run(definition: JobDefinition, instance: DagsterInstance) -> None:
    result = definition.execute_in_process(instance=instance, run_config=QUIET)
    if not result.success:
        raise RuntimeError(f"{definition.name} did not succeed")


def measure(mode: str, workload: str) -> float:
    with tempfile.TemporaryDirectory(prefix="peers-dagster-") as directory:
        if mode == "sqlite":
            instance = DagsterInstance.local_temp(tempdir=directory)
        else:
            instance = DagsterInstance.ephemeral()
        with instance:
            if workload == "W1":
                definition, runs, tasks = fan_out_job(), 1, W1_LEAVES + 2
            elif workload == "W2":
                definition, runs, tasks = chain_job(W2_LENGTH, "w2_chain"), 1, W2_LENGTH
            else:
                definition, runs, tasks = chain_job(3, "w3_small"), W3_RUNS, 3 * W3_RUNS
            start = time.perf_counter()
            for _ in range(runs):
                _run(definition, instance)
            return tasks / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    modes = []
    for mode in ("sqlite", "memory"):
        found: dict[str, Any] = {"mode": mode}
        for workload in ("W1", "W2", "W3"):
            try:
                found[workload] = statistics.median(
                    measure(mode, workload) for _ in range(args.repeat)
                )
            except Exception as exc:
                found.setdefault("note", f"{workload}: {type(exc).__name__}: {exc}")
            print(f"dagster {mode} {workload}: {found.get(workload)}", file=sys.stderr)
        modes.append(found)
    version = metadata.version("dagster")
    print(json.dumps({"peer": "Dagster", "version": version, "modes": modes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
