"""Trigger rules, on the pure decision function: every rule against every combination
of parent outcomes (with some parents not ended yet), checked against an oracle that
enumerates every way the unfinished parents could still end."""

from __future__ import annotations

import itertools

import pytest

from ppacer_async import TriggerRule
from ppacer_async._scheduler.rules import RUN, SKIP, UPSTREAM_FAILED, WAIT, decide

OUTCOMES = ("success", "failed", "upstream_failed", "skipped")
PENDING = "pending"

#: Rules that look at every parent before running; the others run at the first
#: parent that meets them.
_WAITS_FOR_ALL = {
    TriggerRule.all_success,
    TriggerRule.all_failed,
    TriggerRule.all_done,
    TriggerRule.none_failed,
    TriggerRule.none_failed_min_one_success,
}


def _met(rule: TriggerRule, ended: list[str]) -> bool:
    """Airflow's definition of each rule, on the parents that ended."""
    ok = ended.count("success")
    bad = ended.count("failed") + ended.count("upstream_failed")
    return {
        TriggerRule.all_success: ok == len(ended),
        TriggerRule.all_failed: bad == len(ended),
        TriggerRule.all_done: True,
        TriggerRule.one_success: ok > 0,
        TriggerRule.one_failed: bad > 0,
        TriggerRule.one_done: ok + bad > 0,
        TriggerRule.none_failed: bad == 0,
        TriggerRule.none_failed_min_one_success: bad == 0 and ok > 0,
        TriggerRule.always: True,
    }[rule]


def _oracle(rule: TriggerRule, parents: tuple[str, ...]) -> int:
    if rule is TriggerRule.always or not parents:
        return RUN
    ended = [p for p in parents if p != PENDING]
    pending = len(parents) - len(ended)
    if rule in _WAITS_FOR_ALL:
        if not pending and _met(rule, ended):
            return RUN
    elif _met(rule, ended):
        return RUN
    futures = itertools.product(OUTCOMES, repeat=pending)
    if any(_met(rule, ended + list(rest)) for rest in futures):
        return WAIT
    if rule in (TriggerRule.all_failed, TriggerRule.one_failed, TriggerRule.one_done):
        return SKIP
    return UPSTREAM_FAILED if any(p in ("failed", "upstream_failed") for p in ended) else SKIP


def _decide(rule: TriggerRule, parents: tuple[str, ...]) -> int:
    return decide(
        rule,
        len(parents),
        parents.count("success"),
        parents.count("failed") + parents.count("upstream_failed"),
        parents.count("skipped"),
    )


_CASES = [
    (rule, parents)
    for rule in TriggerRule
    for n in range(4)
    for parents in itertools.combinations_with_replacement((*OUTCOMES, PENDING), n)
]


@pytest.mark.parametrize(("rule", "parents"), _CASES, ids=[f"{r}-{'+'.join(p)}" for r, p in _CASES])
def test_rule_decides_as_soon_as_the_outcome_is_known(
    rule: TriggerRule, parents: tuple[str, ...]
) -> None:
    assert _decide(rule, parents) == _oracle(rule, parents)


# A few cases spelled out, as a reader checks them against Airflow's documentation.
@pytest.mark.parametrize(
    ("rule", "parents", "expected"),
    [
        (TriggerRule.all_success, ("success", "success"), RUN),
        (TriggerRule.all_success, ("success", PENDING), WAIT),
        (TriggerRule.all_success, ("failed", PENDING), UPSTREAM_FAILED),
        (TriggerRule.all_success, ("skipped", "success"), SKIP),
        (TriggerRule.all_success, ("skipped", "failed"), UPSTREAM_FAILED),
        (TriggerRule.all_failed, ("failed", "upstream_failed"), RUN),
        (TriggerRule.all_failed, ("failed", "success"), SKIP),
        (TriggerRule.all_done, ("failed", "skipped", "success"), RUN),
        (TriggerRule.all_done, ("failed", PENDING), WAIT),
        (TriggerRule.one_success, ("success", PENDING), RUN),
        (TriggerRule.one_success, ("failed", "failed"), UPSTREAM_FAILED),
        (TriggerRule.one_success, ("skipped", "skipped"), SKIP),
        (TriggerRule.one_success, ("skipped", "failed"), UPSTREAM_FAILED),
        (TriggerRule.one_failed, ("upstream_failed", PENDING), RUN),
        (TriggerRule.one_failed, ("success", "skipped"), SKIP),
        (TriggerRule.one_done, ("skipped", PENDING), WAIT),
        (TriggerRule.one_done, ("skipped", "skipped"), SKIP),
        (TriggerRule.one_done, ("failed", PENDING), RUN),
        (TriggerRule.none_failed, ("skipped", "success"), RUN),
        (TriggerRule.none_failed, ("skipped", "skipped"), RUN),
        (TriggerRule.none_failed, ("failed", PENDING), UPSTREAM_FAILED),
        (TriggerRule.none_failed_min_one_success, ("skipped", "skipped"), SKIP),
        (TriggerRule.none_failed_min_one_success, ("skipped", "success"), RUN),
        (TriggerRule.always, ("failed", PENDING), RUN),
        (TriggerRule.always, (), RUN),
        (TriggerRule.one_success, (), RUN),
    ],
)
def test_rule_examples(rule: TriggerRule, parents: tuple[str, ...], expected: int) -> None:
    assert _decide(rule, parents) == expected
