"""What every notifier shares: template rendering, option checks, the error type and
the redelivery loop (on the package's one retry helper, :class:`~.._backoff.Backoff`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import attrs

from .._backoff import Backoff
from .._exceptions import PpacerError
from .._structures import Alert, render_alert_text

logger = logging.getLogger("ppacer_async.notify")

#: The fields a notifier template may use, in ``str.format`` style.
TEMPLATE_FIELDS = (
    "kind",
    "dag_id",
    "run_id",
    "task_id",
    "attempt",
    "logical_time",
    "error",
    "error_line",
    "text",
)

DEFAULT_TEMPLATE = "{text}"

_SAMPLE_ALERT = Alert(
    kind="failure",
    dag_id="dag",
    run_id=1,
    task_id="task",
    attempt=1,
    logical_time=datetime(2000, 1, 1, tzinfo=UTC),
    error="Traceback (most recent call last):\nValueError: sample",
    text="sample alert",
)


class NotifierError(PpacerError, RuntimeError):
    """A notifier could not deliver an alert, after its retries when the failure was
    transient. The scheduler logs it; it never fails a task or a run."""


def render(template: str, alert: Alert, escape: Callable[[str], str] | None = None) -> str:
    """Render ``template`` with the fields of ``alert`` (see ``TEMPLATE_FIELDS``).

    :param escape: applied to every string field before formatting (e.g. for Slack).
    """
    fields: dict[str, Any] = attrs.asdict(alert, recurse=False)
    if escape is not None:
        fields = {k: escape(v) if isinstance(v, str) else v for k, v in fields.items()}
    return render_alert_text(template, **fields)


def check_template(name: str, template: object) -> str:
    if not isinstance(template, str):
        raise TypeError(f"{name} must be a str, got {type(template).__name__} {template!r}")
    try:
        render(template, _SAMPLE_ALERT)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"{name} {template!r} cannot be rendered ({type(exc).__name__}: {exc}); "
            f"use fields {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)} "
            "and double literal braces as {{ }}"
        ) from None
    return template


def check_duration(name: str, value: object, *, allow_zero: bool) -> timedelta:
    if not isinstance(value, timedelta):
        raise TypeError(
            f"{name} must be a datetime.timedelta, e.g. timedelta(seconds=10), "
            f"got {type(value).__name__} {value!r}"
        )
    if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        bound = "zero or positive" if allow_zero else "positive"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _check_retries(retries: object) -> int:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
    return retries


def _check_backoff(backoff: object) -> float:
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 1:
        raise ValueError(f"retry_backoff must be a number >= 1, got {backoff!r}")
    return float(backoff)


def describe(alert: Alert) -> str:
    return f"{alert.kind} alert of {alert.dag_id}.{alert.task_id}, run {alert.run_id}"


@attrs.frozen
class Failure:
    """Why one delivery attempt failed; ``reason`` is safe to log (no secrets)."""

    reason: str
    transient: bool
    retry_after: float | None = None
    cause: BaseException | None = None


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how patiently a notifier retries a transient failure."""

    retries: int
    delay: float
    backoff: float
    max_delay: float

    @classmethod
    def checked(
        cls,
        *,
        retries: object,
        retry_delay: object,
        retry_backoff: object,
        max_retry_delay: object,
    ) -> RetryPolicy:
        """The policy for a notifier's options, each checked with a clear error."""
        return cls(
            retries=_check_retries(retries),
            delay=check_duration("retry_delay", retry_delay, allow_zero=True).total_seconds(),
            backoff=_check_backoff(retry_backoff),
            max_delay=check_duration(
                "max_retry_delay", max_retry_delay, allow_zero=True
            ).total_seconds(),
        )

    async def deliver(self, what: str, attempt: Callable[[], Failure | None]) -> None:
        """Run ``attempt`` in a worker thread until it succeeds, a failure is permanent,
        or the retries are used up (then raise ``NotifierError``)."""
        attempts = self.retries + 1
        backoff = Backoff(self.delay, self.max_delay, self.backoff)
        for number in range(1, attempts + 1):
            # A cancelled send (the scheduler's time bound) must not wait for the socket
            # timeout: the thread holds no shared state, so it is left to finish alone.
            failure = await anyio.to_thread.run_sync(attempt, abandon_on_cancel=True)
            if failure is None:
                return
            if not failure.transient:
                raise NotifierError(f"{what}: {failure.reason} (not retried)") from failure.cause
            if number == attempts:
                raise NotifierError(
                    f"{what}: {failure.reason} (gave up after {attempts} attempts)"
                ) from failure.cause
            logger.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.3gs",
                what,
                number,
                attempts,
                failure.reason,
                backoff.upcoming(failure.retry_after),
            )
            await backoff.sleep(failure.retry_after)
