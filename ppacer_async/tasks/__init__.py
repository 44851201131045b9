"""Stock tasks: run a shell command, send an HTTP request, or do nothing.

Each is a ``Task`` subclass, so it composes with ``>>`` like any task and takes the
usual options (``retries``, ``timeout``, ``priority``, ...)::

    from ppacer_async.tasks import EmptyTask, HttpTask, ShellTask

    fetch = HttpTask("fetch", "GET", "https://example.com/data.json")
    unpack = ShellTask("unpack", ["tar", "xzf", "data.tar.gz"], cwd="/srv/data")
    dag.add(fetch >> unpack >> EmptyTask("done"))

``HttpTask`` needs ``pip install 'ppacer-async[http]'``.
"""

from __future__ import annotations

from .._exceptions import CommandError as CommandError
from .._exceptions import HttpStatusError as HttpStatusError
from ._empty import EmptyTask as EmptyTask
from ._http import HttpTask as HttpTask
from ._shell import ShellTask as ShellTask

__all__ = ["CommandError", "EmptyTask", "HttpStatusError", "HttpTask", "ShellTask"]
