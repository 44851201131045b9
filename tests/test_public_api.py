from __future__ import annotations

import importlib
import pkgutil

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


def _classes_defined_in_the_package() -> set[type]:
    found: set[type] = set()
    modules = pkgutil.walk_packages(ppacer_async.__path__, prefix="ppacer_async.")
    for info in modules:
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == info.name:
                found.add(value)
    return found


def test_every_public_exception_is_exported() -> None:
    errors = {
        cls
        for cls in _classes_defined_in_the_package()
        if issubclass(cls, ppacer_async.PpacerError)
    }
    assert {"StorageLockedError", "NotifierError"} <= {cls.__name__ for cls in errors}
    exported = {getattr(ppacer_async, name) for name in ppacer_async.__all__}
    missing = sorted(cls.__qualname__ for cls in errors - exported)
    assert not missing, f"errors not exported from ppacer_async: {missing}"


def test_fake_clock_is_public_in_testing_and_still_importable_where_it_was() -> None:
    from ppacer_async import FakeClock as top_level
    from ppacer_async.clock import FakeClock as in_clock
    from ppacer_async.testing import FakeClock

    assert FakeClock is top_level is in_clock
    assert FakeClock.__module__ == "ppacer_async.testing"


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
