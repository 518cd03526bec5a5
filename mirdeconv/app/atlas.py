"""What the app's Atlas view reads, without Streamlit: the atlases below the operator's
folder (``MIRDECONV_ATLAS_DIR``), their units and their winners' files, every path checked
to lie inside its atlas (the page never gives one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..options import environment

__all__ = ["atlas_folders", "atlas_table", "unit_rows", "atlas_file", "feature_summary"]


def atlas_folders(root: Path | None = None) -> dict[str, Path]:
    """Name -> folder of every atlas (a folder with ``atlas.parquet``) at or one level below
    ``root`` (default: ``MIRDECONV_ATLAS_DIR``; none when it is not set)."""
    root = root or environment().atlas_dir
    if root is None or not root.is_dir():
        return {}
    found = [root] if (root / "atlas.parquet").is_file() else []
    found += sorted(p for p in root.iterdir() if (p / "atlas.parquet").is_file())
    return {(p.name if p != root else root.name): p for p in found}


def atlas_table(folder: Path) -> Any:
    """The atlas' table (pandas)."""
    from ..atlas import load

    return load(folder)


def unit_rows(table: Any, kind: str, layer: str, unit: int) -> Any:
    """One unit's winners, best first."""
    t = table[(table["kind"] == kind) & (table["layer"] == layer) & (table["unit"] == unit)]
    return t.sort_values("rank")


def atlas_file(folder: Path, rel: str) -> bytes | None:
    """A file the table lists, read only when it lies inside the atlas' folder (None: no
    such file, or a path that leaves the folder)."""
    if not rel:
        return None
    base = folder.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path.read_bytes()


SHOWN = {"n": "winners described", "onset_f": "onset F", "percussive_share": "percussive share",
         "low_share": "low share", "mid_share": "mid share", "high_share": "high share",
         "centroid_hz": "centroid (Hz)", "temporal_sparsity": "temporal sparsity"}


def feature_summary(folder: Path, table: Any, layer: str, unit: int) -> tuple[str, Any]:
    """A feature's label from the annotations (``""`` without) and its descriptors over its
    winners (a one-row table with readable names, or None)."""
    import pandas as pd

    rows = unit_rows(table, "feature", layer, unit)
    label = ""
    if "label" in rows.columns and len(rows) and isinstance(rows["label"].iloc[0], str):
        label = f"{rows['label'].iloc[0]} (IoU {rows['label_iou'].iloc[0]:.2f})"
    path = folder / "features.parquet"
    if not path.is_file():
        return label, None
    feats = pd.read_parquet(path)
    row = feats[(feats["layer"] == layer) & (feats["unit"] == unit)]
    cols = [c for c in SHOWN if c in row.columns]
    return label, (row[cols].rename(columns=SHOWN).round(3) if len(row) else None)
