"""Timing for the benchmarks, without TensorFlow (the PyTorch peer's process imports it too)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

#: Timed runs after one warm-up.
REPEATS = 5


def median_ms(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
    """Milliseconds of ``fn()``: one warm-up, then the median of ``repeats`` runs."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def side_by_side_ms(fns: list, repeats: int = REPEATS) -> list[float]:
    """Median ms of each function, timed in alternation so that all see the same machine load."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [1000 * statistics.median(ts) for ts in times]
