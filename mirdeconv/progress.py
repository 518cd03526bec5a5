"""Progress of long work: a tqdm bar on the command line, a callback for the app, or nothing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "ProgressArg"]

#: What the public functions take as ``progress=``: False (nothing), True (a tqdm bar), or
#: ``callable(done, total)`` called after each unit of work.
ProgressArg = bool | Callable[[int, int], Any]


class Progress:
    """Counts work done and reports it the way the caller asked.

    Parameters
    ----------
    progress : bool or callable
        False: silent; True: a tqdm bar; ``callable(done, total)``: called on every update.
    total : int
        Units of work.
    desc, unit : str
        The bar's description and unit.
    """

    def __init__(self, progress: ProgressArg, total: int, desc: str = "", unit: str = "it") -> None:
        self.total, self.done = int(total), 0
        self._callback = progress if callable(progress) else None
        self._bar = None
        if progress and self._callback is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self, n: int = 1) -> None:
        """``n`` more units are done."""
        self.done += int(n)
        if self._bar is not None:
            self._bar.update(n)
        elif self._callback is not None:
            self._callback(self.done, self.total)

    def share(self, units: int) -> Callable[[int, int], None]:
        """A ``progress=`` callback for a part of the work worth ``units`` of this one: its
        ``(done, total)`` are turned into as many of these units, counted as they come."""
        given = [0]

        def report(done: int, total: int) -> None:
            now = units if total <= 0 else min(units, units * done // total)
            if now > given[0]:
                self.update(now - given[0])
                given[0] = now

        return report

    def write(self, text: str) -> None:
        """A line for the person watching the bar (above it, on stderr); nothing otherwise."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
