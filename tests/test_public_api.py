from __future__ import annotations

import ppacer_async


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(ppacer_async).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("ppacer_async")
    }
    # sorted as ruff's RUF022 does: SCREAMING_CASE names first, then the rest
    assert ppacer_async.__all__ == sorted(
        ppacer_async.__all__, key=lambda name: (not name.isupper(), name)
    )
    assert set(ppacer_async.__all__) == public


def test_errors_inherit_their_builtin_twins() -> None:
    assert issubclass(ppacer_async.DagNotFound, LookupError)
    assert issubclass(ppacer_async.RunNotFound, LookupError)
    assert issubclass(ppacer_async.DagDefinitionError, ValueError)
    assert issubclass(ppacer_async.ScheduleError, ValueError)
    for name in ppacer_async.__all__:
        value = getattr(ppacer_async, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, ppacer_async.PpacerError), name


def test_importing_the_package_does_not_import_asyncpg() -> None:
    import subprocess
    import sys

    code = "import sys, ppacer_async; print('asyncpg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
