"""Writing result files safely: every file appears whole or not at all."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError

__all__ = ["atomic_path", "save_npy", "save_json", "prepare_folder"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save an array as ``.npy`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Save JSON atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    return path


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def prepare_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and parents) and check that files can be written in it.

    Raises
    ------
    OutputError
        The folder cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".mirdeconv-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return folder
