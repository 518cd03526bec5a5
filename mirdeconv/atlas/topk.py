"""The top-k table of an atlas and its merge: associative and commutative, so per-track
tables can be reduced in any tree (memory O(units x k), never O(tracks)).

A table has one row per (kind, layer, unit, winner): ``kind`` ``"feature"`` (``unit`` a
feature of ``layer``) or ``"tag"`` (``unit`` a class, ``layer`` empty), ``activation`` (the
feature's peak, or the tag's probability), ``track``, ``start`` and ``end`` (seconds).  The
order within a unit: activation descending, then track and start ascending (ties broken
the same way whatever the order of the merges).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["COLUMNS", "KEY", "empty", "merge", "top_k"]

COLUMNS = ["kind", "layer", "unit", "activation", "track", "start", "end"]
KEY = ["kind", "layer", "unit"]


def empty() -> pd.DataFrame:
    """A table with no rows."""
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("activation", "start", "end")
                                      else "int64" if c == "unit" else "object")
                         for c in COLUMNS})


def top_k(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` best rows of every unit, in the atlas' order, with ``rank`` (0 = best)."""
    t = table.sort_values(KEY + ["activation", "track", "start"],
                          ascending=[True, True, True, False, True, True], kind="mergesort")
    t = t.groupby(KEY, sort=False, dropna=False).head(k).reset_index(drop=True)
    t["rank"] = t.groupby(KEY, sort=False, dropna=False).cumcount()
    return t


def merge(a: pd.DataFrame, b: pd.DataFrame, k: int) -> pd.DataFrame:
    """The top ``k`` of every unit over both tables."""
    return top_k(pd.concat([a[COLUMNS], b[COLUMNS]], ignore_index=True), k)
