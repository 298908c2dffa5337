"""Atomic file writes of the training package: JSON, JSON lines, and any bytes producer.

Every file is written to a temporary file in the same folder, flushed to disk and renamed
over the target with :func:`os.replace`, so a reader (or a run killed mid-write) sees either
the previous file or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["atomic_write", "json_default", "load_json", "write_json", "write_jsonl"]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    If ``write`` raises (or the process dies) the previous ``path`` is untouched and the
    temporary file is removed (on an exception).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # mode 0o666 filtered by the umask, as for any new file (mkstemp would give 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def json_default(obj: Any) -> Any:
    """JSON encoder fallback: numpy scalars and arrays, paths, tuples of the above."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=1, default=json_default)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_jsonl(path: str | Path, records: Iterable[Any]) -> Path:
    """Write one JSON document per line, atomically (the whole file is rewritten)."""
    text = "".join(json.dumps(r, default=json_default) + "\n" for r in records)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read a JSON file; ``FileNotFoundError`` / ``ValueError`` naming ``what`` and the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path} is not valid JSON: {err}") from err
