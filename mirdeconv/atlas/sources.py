"""What an atlas is made of: the tracks of a folder (recursively) or of a list (CSV or
Parquet with a ``path`` column), each with a stable id (its path relative to the source)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd  # not lazy: the atlas' other rooms import it at their top anyway

from ..errors import InvalidOptionError

__all__ = ["Track", "collect", "AUDIO_SUFFIXES"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True, order=True)
class Track:
    """One track of a collection: ``id`` (stable across runs: the path relative to the
    folder or list) and ``path`` (absolute)."""

    id: str
    path: str


def collect(source: str | os.PathLike) -> list[Track]:
    """The tracks of ``source``, sorted by id.

    Parameters
    ----------
    source : path
        A folder (every audio file below it, recursively) or a ``.csv`` / ``.parquet`` file
        with a ``path`` column (paths relative to the list's folder, or absolute).

    Raises
    ------
    InvalidOptionError
        A source that does not exist, a list without a ``path`` column, or no track at all.
    """
    src = Path(source)
    if src.is_dir():
        paths = [p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
        tracks = [Track(p.relative_to(src).as_posix(), str(p.resolve())) for p in paths]
    elif src.is_file() and src.suffix.lower() in (".csv", ".parquet"):
        table = pd.read_csv(src) if src.suffix.lower() == ".csv" else pd.read_parquet(src)
        if "path" not in table.columns:
            raise InvalidOptionError(f"{src} has no 'path' column (columns: "
                                     f"{', '.join(map(str, table.columns))})")
        tracks = []
        for p in table["path"].astype(str):
            full = Path(p) if Path(p).is_absolute() else src.parent / p
            tracks.append(Track(p, str(full.resolve())))
    else:
        raise InvalidOptionError(f"{src} is neither a folder of audio nor a .csv/.parquet list")
    if not tracks:
        raise InvalidOptionError(f"{src} holds no audio ({', '.join(AUDIO_SUFFIXES)})")
    return sorted(set(tracks))
