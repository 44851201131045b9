"""A DAG definition's stored form and content hash, made task by task.

A definition is a JSON object (``DAG.definition``). Storage keeps it as its JSON text,
zlib-compressed (:func:`encode_definition`); :func:`decode_definition` reads that form,
and also the plain JSON text or object that earlier versions stored. The content hash is
the SHA-256 of the JSON text with sorted keys and no spaces.

For a large DAG, :func:`stream_definition` makes both without ever holding the whole
definition as objects or as one text: tasks are encoded a batch at a time into the hash
(in task id order, as sorted keys require) and into the compressor (in definition order).
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

#: The JSON text whose SHA-256 is a definition's hash: sorted keys, no spaces.
hash_text: Callable[[Any], str] = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
#: A task id whose JSON text is itself in quotes.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.\-]+\Z")
#: How many tasks are encoded per batch.
BATCH = 4096
#: zlib's level: the definitions are repetitive, and the fastest level already makes
#: them a few percent of their size.
LEVEL = 1


def definition_hash(definition: Mapping[str, Any]) -> str:
    """The content hash of a definition given as an object."""
    return hashlib.sha256(hash_text(definition).encode()).hexdigest()


def encode_definition(definition: Mapping[str, Any]) -> bytes:
    """The stored form of a definition given as an object: its JSON, zlib-compressed."""
    return zlib.compress(json.dumps(definition, separators=(",", ":")).encode(), LEVEL)


def decode_definition(stored: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> Any:
    """A definition as an object, from any form storage holds: compressed JSON (this
    version), JSON text, or an already-decoded object (earlier versions)."""
    if isinstance(stored, Mapping):
        return dict(stored)
    if isinstance(stored, str):
        return json.loads(stored)
    data = bytes(stored)
    if data[:1] in (b"{", b" ", b"\n"):  # JSON text (a definition is an object)
        return json.loads(data)
    return json.loads(zlib.decompress(data))


def stored_definition(definition: bytes | Mapping[str, Any]) -> bytes:
    """What a storage writes, given what :meth:`Storage.sync_dag` was passed: the stored
    form as it is, or a definition object encoded."""
    if isinstance(definition, bytes | bytearray | memoryview):
        return bytes(definition)
    if isinstance(definition, Mapping):
        return encode_definition(definition)
    raise TypeError(
        "a DAG definition must be its stored form (bytes, from DAG.encoded_definition()) "
        f"or a dict, got {type(definition).__name__}"
    )


def stream_definition(
    head: Mapping[str, Any],
    ids: tuple[str, ...],
    task_text: Callable[[int], str],
) -> tuple[str, bytes]:
    """The hash and the stored form of a definition whose ``tasks`` member has one
    entry per id of ``ids`` (in that order), ``task_text(i)`` being the sorted-keys JSON
    text of task ``i``'s entry; ``head`` holds the other members."""
    # Task ids are letters, digits, '_', '.' and '-' (checked when a task is made): their
    # JSON text is the id in quotes, without the encoder's call per id.
    plain = all(map(_PLAIN_ID.match, ids))
    digest = hashlib.sha256()
    order = sorted(range(len(ids)), key=ids.__getitem__)
    for chunk in _chunks(head, ids, plain, task_text, order):
        digest.update(chunk)
    compressor = zlib.compressobj(LEVEL)
    chunks = _chunks(head, ids, plain, task_text, None)
    parts = [compressor.compress(chunk) for chunk in chunks]
    parts.append(compressor.flush())
    return digest.hexdigest(), b"".join(parts)


def _chunks(
    head: Mapping[str, Any],
    ids: tuple[str, ...],
    plain: bool,
    task_text: Callable[[int], str],
    order: Iterable[int] | None,
) -> Iterator[bytes]:
    """The definition's JSON text in pieces: with ``order`` (task indexes by id) the
    hash's text, every key sorted; without, tasks in definition order after the rest."""
    keys = sorted([*head, "tasks"]) if order is not None else [*head, "tasks"]
    text = "{"
    for n, key in enumerate(keys):
        text += ("," if n else "") + hash_text(key) + ":"
        if key != "tasks":
            text += hash_text(head[key])
            continue
        yield (text + "{").encode()
        text = ""
        batch: list[str] = []
        for i in range(len(ids)) if order is None else order:
            name = f'"{ids[i]}":' if plain else hash_text(ids[i]) + ":"
            batch.append(name + task_text(i))
            if len(batch) == BATCH:
                yield (text + ",".join(batch)).encode()
                text, batch = ",", []
        if batch:
            yield (text + ",".join(batch)).encode()
        text = "}"
    yield (text + "}").encode()
