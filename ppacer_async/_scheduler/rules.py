"""Trigger rules as pure functions: given how a task's direct upstream tasks ended so
far, run it, wait, or settle it ``skipped`` or ``upstream_failed`` (Airflow's rules).

A decision is taken as soon as it is known: a ``one_success`` task runs at its first
successful parent, an ``all_success`` one is ``upstream_failed`` at its first failed one.
"""

from __future__ import annotations

from .._enums import TriggerRule

# Decisions (small ints: compared on the hot path).
WAIT = 0
RUN = 1
SKIP = 2
UPSTREAM_FAILED = 3


def decide(rule: TriggerRule, total: int, success: int, failed: int, skipped: int) -> int:
    """What to do with a task whose ``total`` direct parents ended so far with
    ``success`` successes, ``failed`` failures (failed or upstream_failed) and
    ``skipped`` skips; the others have not ended yet.

    :return: ``WAIT``, ``RUN``, ``SKIP`` or ``UPSTREAM_FAILED``.
    """
    if total == 0 or rule is TriggerRule.always:
        return RUN
    done = success + failed + skipped
    all_done = done == total
    if rule is TriggerRule.all_success:
        if failed:
            return UPSTREAM_FAILED
        if skipped:
            return SKIP
        return RUN if all_done else WAIT
    if rule is TriggerRule.all_failed:
        if success or skipped:
            return SKIP
        return RUN if all_done else WAIT
    if rule is TriggerRule.all_done:
        return RUN if all_done else WAIT
    if rule is TriggerRule.one_success:
        if success:
            return RUN
        if not all_done:
            return WAIT
        return SKIP if skipped == total else UPSTREAM_FAILED
    if rule is TriggerRule.one_failed:
        if failed:
            return RUN
        return SKIP if all_done else WAIT
    if rule is TriggerRule.one_done:
        if success or failed:
            return RUN
        return SKIP if all_done else WAIT
    if rule is TriggerRule.none_failed:
        if failed:
            return UPSTREAM_FAILED
        return RUN if all_done else WAIT
    if rule is TriggerRule.none_failed_min_one_success:
        if failed:
            return UPSTREAM_FAILED
        if not all_done:
            return WAIT
        return RUN if success else SKIP
    raise ValueError(f"unknown trigger rule {rule!r}")  # pragma: no cover
