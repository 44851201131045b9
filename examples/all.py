"""Every example DAG, for ``ppacer-async serve examples/all.py``.

The command puts this file's directory on ``sys.path``, so the sibling examples import
by their file names.
"""

from __future__ import annotations

import etl
import hello
import stock_tasks

dags = [*hello.dags, *etl.dags, *stock_tasks.dags]
