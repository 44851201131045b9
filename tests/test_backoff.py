from __future__ import annotations

import anyio
import pytest

from ppacer_async._backoff import Backoff

pytestmark = pytest.mark.anyio


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(anyio, "sleep", record)
    return slept


async def test_reconnect_delays_double_up_to_the_cap_and_reset_after_success(
    waits: list[float],
) -> None:
    backoff = Backoff()
    for _ in range(8):
        await backoff.sleep()
    backoff.reset()
    await backoff.sleep()
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 0.1]


async def test_a_server_asked_wait_is_honoured_up_to_the_cap(waits: list[float]) -> None:
    backoff = Backoff(1.0, 10.0, 3.0)
    await backoff.sleep(at_least=2.5)  # longer than the delay: honoured
    await backoff.sleep(at_least=0.5)  # shorter: the delay wins
    await backoff.sleep(at_least=60.0)  # longer than the cap: capped
    assert waits == [2.5, 3.0, 10.0]


async def test_a_first_delay_above_the_cap_is_capped(waits: list[float]) -> None:
    backoff = Backoff(30.0, 2.0)
    assert backoff.upcoming() == 2.0
    await backoff.sleep()
    assert waits == [2.0]
