"""A batch output folder as a store: one index that runs merge into, claims on tracks, checks.

* ``index.parquet`` is merged, never clobbered: under an exclusive lock (``.index.lock``)
  a run reads the index, replaces the rows of the (track, layer) pairs it has written (and
  an earlier failure of a track it has now read) and writes the result atomically.  Runs
  into one folder, one after the other or at once, leave one table with every row once.
* A run claims a track while it works on it (``<track>/.claim``, an ``flock`` with the
  owner's pid inside; the kernel releases it when the process exits or dies, so a crash
  leaves no stale claim).  A run that finds a track claimed does its other tracks first,
  then waits for the claim and skips what the other run completed.
* :func:`check_index` compares the index with the files on disk (each (track, layer)'s
  ``_done.json`` lists its rows); :func:`repair_index` rebuilds the index from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .analysis import DESCRIPTORS
from .store import atomic_path, file_lock

__all__ = ["INDEX_COLUMNS", "DESCRIPTOR_COLUMNS", "AUDIO_SUFFIXES", "write_index", "load_index",
           "claim", "check_index", "repair_index"]

INDEX_COLUMNS = [
    "track", "track_path", "truncated", "layer", "feature", "status", "error", "dead",
    "dead_reason", "activation_max", "activation_mean", "fraction_active", "audio_path",
    "grid_path", "sr", "duration", "method", "target", "reading", "sign", "normalize",
    "output_sr", "precision", "mode", "model_name", "model_family", "model_source",
    "model_graph_sha256", "representation",
]
#: Descriptor columns of the index (see :mod:`mirdeconv.analysis`); NaN with ``analyse=False``.
DESCRIPTOR_COLUMNS = ["label", "onsets_from", *DESCRIPTORS]
INDEX_COLUMNS += DESCRIPTOR_COLUMNS
AUDIO_SUFFIXES = (".wav", ".flac")
INDEX = "index.parquet"
MARKER = "_done.json"


def _read_rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    path = out / INDEX
    if not path.is_file():
        return []
    return pq.read_table(path).to_pylist()


def _write_rows(out: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: [r.get(c) for r in rows] for c in INDEX_COLUMNS})
    with atomic_path(out / INDEX) as tmp:
        pq.write_table(table, tmp)


def write_index(out: str | os.PathLike, rows: list[dict]) -> None:
    """Merge a run's rows into ``OUT/index.parquet`` under the folder's lock.

    Parameters
    ----------
    out : str or PathLike
    rows : list of dict
        The run's rows (so far): one per (track, layer, feature), or one per failed track
        (``layer`` None) or layer.
    """
    out = Path(out)
    pairs = {(r["track"], r["layer"]) for r in rows}
    tracks = {r["track"] for r in rows}
    with file_lock(out / ".index.lock"):
        kept = [r for r in _read_rows(out) if (r["track"], r["layer"]) not in pairs
                and not (r["layer"] is None and r["track"] in tracks)]
        _write_rows(out, kept + list(rows))


def load_index(out: str | os.PathLike) -> Any:
    """The index of a batch folder as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(_read_rows(Path(out)), columns=INDEX_COLUMNS)


def claim(out: Path, track: str, *, wait: bool):
    """The claim on one track of a folder (a context manager yielding whether it is held)."""
    return file_lock(out / track / ".claim", blocking=wait, owner=f"pid {os.getpid()}")


def _markers(out: Path) -> list[dict]:
    rows = []
    for marker in sorted(out.glob(f"*/*/{MARKER}")):
        try:
            rows.extend(json.loads(marker.read_text())["rows"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            continue
    return rows


def check_index(out: str | os.PathLike) -> dict[str, list[str]]:
    """What the index and the files disagree on.

    Returns
    -------
    dict
        ``missing``: files the index lists that are not on disk; ``unlisted``: audio files on
        disk the index does not list (orphans); ``duplicates``: (track, layer, feature)
        listed more than once.  All empty: the index is whole.
    """
    out = Path(out)
    rows = _read_rows(out)
    listed = {r["audio_path"] for r in rows if r.get("audio_path")}
    on_disk = {str(p.relative_to(out)) for p in out.glob("*/*/*") if p.suffix in AUDIO_SUFFIXES}
    keys = [(r["track"], r["layer"], r["feature"]) for r in rows if r["layer"] is not None]
    seen, dup = set(), set()
    for k in keys:
        (dup if k in seen else seen).add(k)
    return {"missing": sorted(p for p in listed if not (out / p).is_file()),
            "unlisted": sorted(on_disk - listed),
            "duplicates": sorted("/".join(map(str, k)) for k in dup)}


def repair_index(out: str | os.PathLike) -> int:
    """Rebuild ``OUT/index.parquet`` from every complete (track, layer) on disk (their
    ``_done.json``); rows of failed tracks are dropped (run again to retry them).

    Returns
    -------
    int
        Rows written.
    """
    out = Path(out)
    with file_lock(out / ".index.lock"):
        rows = [r for r in _markers(out) if (out / r["audio_path"]).is_file()]
        _write_rows(out, rows)
    return len(rows)
