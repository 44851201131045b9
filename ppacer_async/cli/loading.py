"""Loading the DAGs to serve from a Python file or module, with errors that say what is
wrong in the user's file."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from .._dag import DAG
from .._exceptions import DagDefinitionError
from .common import CliError

logger = logging.getLogger("ppacer_async.cli")


def _split_target(target: str) -> tuple[str, str | None]:
    """``path/or.module[:attr]`` -> (path or module, attr or None).

    Only a colon followed by a (dotted) identifier starts an attribute, so a Windows
    drive letter (``C:\\dags\\etl.py``) stays part of the path.
    """
    source, sep, attr = target.rpartition(":")
    if sep and source and attr and all(part.isidentifier() for part in attr.split(".")):
        return source, attr
    return target, None


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source


def _import_path(path: Path) -> ModuleType:
    """Import a .py file by path, its directory first on ``sys.path`` for its siblings."""
    if not path.is_file():
        what = "is a directory, not a .py file" if path.is_dir() else "does not exist"
        raise CliError(f"cannot load DAGs: {path} {what}")
    shown = str(path)
    path = path.resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # The file's stem is the name a sibling would import it by, and the name its task
    # functions carry in their fingerprints (so `serve dags.py` and `serve dags` agree).
    name = path.stem
    if not name.isidentifier() or name in sys.modules:
        name = "ppacer_dags_" + re.sub(r"\W", "_", name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load DAGs: {shown} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        _raise_import_failure(exc, shown, path)
    return module


def _import_module(name: str) -> ModuleType:
    """Import a dotted module name, the current directory first on ``sys.path``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(f"{missing}.")):
            raise CliError(
                f"cannot load DAGs: no module named {name!r} (searched the current directory "
                f"and sys.path); to load a file, pass its path, e.g. {name.replace('.', '/')}.py"
            ) from None
        _raise_import_failure(exc, f"module {name!r}", None)
    except BaseException as exc:
        _raise_import_failure(exc, f"module {name!r}", None)


def _raise_import_failure(exc: BaseException, what: str, path: Path | None) -> NoReturn:
    """Turn an exception raised while importing user code into a ``CliError``."""
    if not isinstance(exc, Exception):
        raise exc  # KeyboardInterrupt, SystemExit: not ours to explain
    if isinstance(exc, DagDefinitionError):
        raise CliError(f"invalid DAG in {what}: {exc}") from None
    logger.debug("importing %s failed", what, exc_info=exc)
    where = ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_import_machinery(f)]
    own = [] if path is None else [f for f in frames if _same_file(f.filename, path)]
    raised = frames[-1] if frames else None
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        raised = traceback.FrameSummary(exc.filename, exc.lineno, "<module>")
    if own and raised is own[-1] and own[-1].lineno is not None:
        where = f" at line {own[-1].lineno}"
    elif raised is not None:
        where = f" at {_shown(raised.filename)}:{raised.lineno}"
        if own:
            where += f" (imported at line {own[-1].lineno} of {_shown(own[-1].filename)})"
    message = str(exc)
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    hint = "" if logger.isEnabledFor(logging.DEBUG) else "; --log-level DEBUG shows the traceback"
    raise CliError(f"importing {what} failed{where}: {detail}{hint}") from None


def _is_import_machinery(frame: traceback.FrameSummary) -> bool:
    name = frame.filename or ""
    return name.startswith("<frozen ") or name == __file__


def _same_file(filename: str | None, path: Path) -> bool:
    return filename is not None and filename != "" and Path(filename).resolve() == path


def _shown(filename: str) -> str:
    """A file name as the user knows it: relative to the current directory if inside."""
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


def _as_dags(value: object, label: str) -> list[DAG]:
    """A DAG or an iterable of DAGs as a list.

    :raises CliError: ``value`` is something else, or empty.
    """
    if isinstance(value, DAG):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        items = list(value)
        wrong = [item for item in items if not isinstance(item, DAG)]
        if wrong:
            raise CliError(
                f"{label} must hold only DAGs, but it holds {type(wrong[0]).__name__} "
                f"{_short_repr(wrong[0])}"
            )
        if not items:
            raise CliError(f"{label} is empty: there is no DAG to serve")
        return items
    raise CliError(f"{label} is {_short_repr(value)}, not a DAG or a list of DAGs")


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _dag_attributes(module: ModuleType) -> list[str]:
    """Public module attributes that hold a DAG or a non-empty list of DAGs."""
    found = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, DAG) or (
            isinstance(value, list | tuple) and value and all(isinstance(d, DAG) for d in value)
        ):
            found.append(name)
    return found


def _module_level_dags(module: ModuleType) -> list[DAG]:
    found: dict[int, DAG] = {}
    for value in vars(module).values():
        if isinstance(value, DAG):
            found.setdefault(id(value), value)
    return list(found.values())


def load_dags(target: str) -> list[DAG]:
    """The DAGs named by ``path/to/file.py[:attr]`` or ``dotted.module[:attr]``.

    Without ``attr``: the module's ``dags`` when it has one, else every DAG defined at
    module level.

    :raises CliError: the file or module is missing, fails to import, or holds no DAGs.
    """
    return load_dags_and_pools(target)[0]


def load_dags_and_pools(target: str) -> tuple[list[DAG], dict[str, int]]:
    """``load_dags``, and the module's ``pools`` (a dict of pool names to slots) when
    it defines one, else ``{}``.

    :raises CliError: as ``load_dags``; or ``pools`` is not such a dict.
    """
    source, attr = _split_target(target)
    module = _import_path(Path(source)) if _is_path(source) else _import_module(source)
    pools = getattr(module, "pools", {})
    if not isinstance(pools, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in pools.items()
    ):
        raise CliError(
            f"{source}:pools must be a dict of pool names to slots, e.g. "
            f"{{'warehouse': 4}}; got {_short_repr(pools)}"
        )
    return _find_dags(module, source, attr), dict(pools)


def _find_dags(module: ModuleType, source: str, attr: str | None) -> list[DAG]:
    if attr is None:
        if hasattr(module, "dags"):
            return _as_dags(module.dags, f"{source}:dags")
        dags = _module_level_dags(module)
        if not dags:
            raise CliError(
                f"no DAGs in {source}: define DAG objects at module level or a list named "
                f"'dags', or name one with {source}:ATTR"
            )
        return dags
    value: object = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            candidates = _dag_attributes(module)
            hint = f" (attributes holding DAGs: {', '.join(candidates)})" if candidates else ""
            raise CliError(f"{source} has no attribute {attr!r}{hint}") from None
    return _as_dags(value, f"{source}:{attr}")
