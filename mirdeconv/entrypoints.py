"""Entry points of installed packages: one discovery for every group, one registry mechanism.

mirdeconv reads two entry-point groups, ``mirdeconv.adapters`` (:mod:`mirdeconv.adapters`)
and ``mirdeconv.plugins`` (:mod:`mirdeconv.registry`), in the style of xarray's
``backends/plugins.py``:

* the installed packages' metadata is read once for every group (:func:`entry_points`,
  cached), and each group's entry points are loaded once, by an :class:`EntryPointRegistry`
  that builds what its group stands for (adapters by name, plugins with their errors) and
  keeps it until :func:`refresh`;
* one broken package never stops the rest: an entry point that fails to load is kept with
  its error (:class:`Loaded`);
* :func:`refresh` forgets all of it, for every group at once (after installing a package in
  a running process);
* an unknown name is refused with the names there are and the closest ones
  (:func:`unknown_name`).
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import re
import threading
import traceback
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = ["Loaded", "EntryPointRegistry", "entry_points", "load_group", "refresh",
           "describe_error", "unknown_name"]

T = TypeVar("T")

#: One lock for every registry (re-entrant: a plugin imported during discovery may itself
#: ask a registry).
_LOCK = threading.RLock()
_REGISTRIES: list[EntryPointRegistry[Any]] = []


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


def unknown_name(what: str, name: str, known: Iterable[str], plural: str) -> str:
    """``no model adapter named 'kera' (did you mean 'keras'?); adapters: keras, pb``."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no {what} named {name!r}{hint}; {plural}: {', '.join(known) or 'none'}"


@functools.lru_cache(maxsize=1)
def entry_points() -> dict[str, tuple[importlib.metadata.EntryPoint, ...]]:
    """Every installed entry point, by group: the installed packages' metadata is read once
    for all groups.  Each distribution counts once, the first on the path, as
    :func:`importlib.metadata.entry_points` has it."""
    groups: dict[str, list[importlib.metadata.EntryPoint]] = {}
    seen: set[str] = set()
    try:
        for dist in importlib.metadata.distributions():
            try:
                key = re.sub(r"[-_.]+", "-", dist.name or "").lower()
                if key in seen:
                    continue
                seen.add(key)
                for ep in dist.entry_points:
                    groups.setdefault(ep.group, []).append(ep)
            except Exception:  # one broken installed distribution must not stop the rest
                continue
    except Exception:  # nor an unreadable path entry
        pass
    return {g: tuple(v) for g, v in groups.items()}


def load_group(group: str) -> list[Loaded]:
    """Every entry point of ``group``, each loaded, or with its error."""
    out: list[Loaded] = []
    for ep in entry_points().get(group, ()):
        try:
            out.append(Loaded(ep.name, ep.value, ep.load()))
        except Exception as exc:
            out.append(Loaded(ep.name, ep.value, error=describe_error(exc)))
    return out


class EntryPointRegistry(Generic[T]):
    """One entry-point group, loaded once and built into what it stands for.

    Parameters
    ----------
    group : str
        The entry-point group (``"mirdeconv.adapters"``).
    build : callable
        ``build(loaded)`` turns the group's :class:`Loaded` entry points into the registry's
        value (it reports a bad entry point in that value, never raises for it).

    Every registry shares the one metadata read (:func:`entry_points`) and the one lock;
    :func:`refresh` forgets every registry's value.
    """

    def __init__(self, group: str, build: Callable[[list[Loaded]], T]) -> None:
        self.group = group
        self._build = build
        self._value: T | None = None
        self._memo: dict[Hashable, Any] = {}
        with _LOCK:
            _REGISTRIES.append(self)

    def discover(self) -> T:
        """The group's value, built on the first call and cached until :func:`refresh`."""
        with _LOCK:
            if self._value is None:
                self._value = self._build(load_group(self.group))
            return self._value

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per ``key`` until :func:`refresh` (for what a registry finds
        besides its entry points, such as the plugin folders)."""
        with _LOCK:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def refresh(self) -> T:
        """Read the installed packages again (every group) and rebuild this one."""
        refresh()
        return self.discover()

    def _forget(self) -> None:
        self._value = None
        self._memo.clear()

    def __repr__(self) -> str:
        return f"EntryPointRegistry({self.group!r})"


def refresh() -> None:
    """Forget what was discovered, for every group: the next use reads the installed
    packages' metadata again and loads the entry points again."""
    with _LOCK:
        entry_points.cache_clear()
        for registry in _REGISTRIES:
            registry._forget()
