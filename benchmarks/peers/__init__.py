"""The peers side by side: W1-W3 at the sizes the other schedulers can run in minutes,
through APScheduler 4, Prefect 3, Dagster and Airflow 3, next to ppacer-async and plain
asyncio. Not part of the suite nor of CI; see ``benchmarks/peers/README.md``."""
