"""Run params: JSON objects that every storage stores alike."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def params_problem(params: Mapping[str, Any]) -> str | None:
    """Why ``params`` cannot be stored, or ``None`` when they can.

    NaN and Infinity are refused: they are not JSON, PostgreSQL refuses them and
    SQLite would keep them, so the same DAG would behave differently by storage.
    """
    if not params:
        return None  # nothing to check: the usual trigger, of a DAG without params
    where = _non_finite(params, "params")
    if where is not None:
        return (
            f"{where} is not a finite number: JSON has no NaN or Infinity and PostgreSQL "
            "refuses them; use None or a string such as 'nan'"
        )
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"params must be JSON-serialisable ({exc})"
    return None


def _non_finite(value: object, path: str) -> str | None:
    """The path of the first NaN or infinite float in ``value``, if any."""
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{where} = {item!r}"
        if isinstance(item, Mapping):
            stack.extend((v, f"{where}[{k!r}]") for k, v in reversed(list(item.items())))
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item))))
    return None
