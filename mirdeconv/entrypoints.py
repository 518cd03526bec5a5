"""Entry points of installed packages, read without letting one broken package stop the rest."""

from __future__ import annotations

import importlib.metadata
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Loaded", "load_group", "describe_error"]


@dataclass
class Loaded:
    """One entry point, loaded or with the reason it failed."""

    name: str
    value: str
    obj: Any = None
    error: str = ""


def describe_error(exc: BaseException) -> str:
    """``Type: message (file.py:line)`` of an exception, for people."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_group(group: str) -> list[Loaded]:
    """Every entry point of ``group`` (importlib.metadata lists each installed distribution
    once: the first on the path), each loaded, or with its error."""
    try:
        eps = importlib.metadata.entry_points(group=group)
    except Exception:  # a broken installed distribution must not stop discovery
        return []
    out: list[Loaded] = []
    for ep in eps:
        try:
            out.append(Loaded(ep.name, ep.value, ep.load()))
        except Exception as exc:
            out.append(Loaded(ep.name, ep.value, error=describe_error(exc)))
    return out
