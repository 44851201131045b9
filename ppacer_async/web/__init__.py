"""The web side of ppacer-async (the ``web`` extra): one ASGI app with a JSON API
under ``/api/v1``, server-rendered pages at ``/`` and Prometheus metrics at ``/metrics``.

Serve a running scheduler from your own app::

    app.mount("/ppacer", create_app(scheduler))

or a storage that another process schedules: ``create_app(storage="sqlite:///ppacer.db")``.
"""

from __future__ import annotations

from .app import create_app as create_app

__all__ = ["create_app"]
