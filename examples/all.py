"""Every example DAG, for ``ppacer-async serve examples/all.py``.

The command puts this file's directory on ``sys.path``, so the sibling examples import
by their file names.
"""

from __future__ import annotations

import branching
import etl
import fanout
import hello
import pools as pooled
import rules
import sensors
import stock_tasks
import timeouts

dags = [
    *hello.dags,
    *etl.dags,
    *rules.dags,
    *branching.dags,
    *fanout.dags,
    *timeouts.dags,
    *stock_tasks.dags,
    *pooled.dags,
    *sensors.dags,
]
pools = dict(pooled.pools)
