"""``LogNotifier``: alerts written to a logger (the default notifier)."""

from __future__ import annotations

import logging

from .._structures import Alert
from ..abc import Notifier


class LogNotifier(Notifier):
    """Writes each alert to the ``ppacer_async.alerts`` logger at ERROR (the default).

    :param logger: the logger to write to.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("ppacer_async.alerts")

    async def send(self, alert: Alert) -> None:
        self.logger.error("%s", alert.text)

    def __repr__(self) -> str:
        return f"LogNotifier({self.logger.name!r})"
