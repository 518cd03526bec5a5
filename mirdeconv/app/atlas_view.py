"""The app's Atlas view: a feature's (or a tag's) strongest moments across a collection,
heard and seen side by side."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from . import atlas


@st.cache_data(show_spinner="Reading the atlas ...", max_entries=4)
def _table(folder: str, stamp: float):
    return atlas.atlas_table(Path(folder))


def atlas_view() -> None:
    """Pick an atlas (from the operator's folder), a layer and a feature or a tag; its
    winners with their excerpts, auralisations and pictures."""
    folders = atlas.atlas_folders()
    if not folders:
        st.info("No atlas to show: the operator sets MIRDECONV_ATLAS_DIR to a folder of "
                "atlases made by `mirdeconv atlas ... --out` (the page opens no other path).")
        return
    name = st.selectbox("Atlas", list(folders), key="atlas")
    folder = folders[name]
    table = _table(str(folder), (folder / "atlas.parquet").stat().st_mtime)
    kinds = sorted(table["kind"].unique())
    cols = st.columns(3)
    kind = cols[0].radio("Of", kinds, key="atlas_kind", horizontal=True,
                         format_func=lambda k: {"feature": "a feature", "tag": "a tag"}[k])
    part = table[table["kind"] == kind]
    layers = sorted(part["layer"].unique())
    layer = cols[1].selectbox("Layer", layers, key="atlas_layer") if kind == "feature" else ""
    units = sorted(part[part["layer"] == layer]["unit"].unique())
    labels = _labels(folder) if kind == "tag" else []
    unit = cols[2].selectbox("Feature" if kind == "feature" else "Tag", units, key="atlas_unit",
                             format_func=lambda u: labels[u] if u < len(labels) else str(u))
    rows = atlas.unit_rows(table, kind, layer, int(unit))
    if kind == "feature":
        label, described = atlas.feature_summary(folder, table, layer, int(unit))
        if label:
            st.markdown(f"**Label from the annotations:** {label}")
        if described is not None:
            st.dataframe(described, hide_index=True)
    st.caption(f"{name}: {len(rows)} strongest moments of {kind} {unit}"
               + (f" of {layer}" if layer else "") + f" across {table['track'].nunique()} "
               "tracks, strongest first")
    for r in rows.itertuples(index=False):
        st.markdown(f"**{int(r.rank) + 1}.** {_plain(r.track)}, {r.start:.1f}–{r.end:.1f} s "
                    f"(activation {r.activation:.3g})")
        left, right = st.columns(2)
        excerpt = atlas.atlas_file(folder, getattr(r, "excerpt_path", "") or "")
        sound = atlas.atlas_file(folder, getattr(r, "audio_path", "") or "")
        if excerpt:
            left.audio(excerpt)
            left.caption("the excerpt")
        if sound:
            right.audio(sound)
            right.caption("the feature's auralisation on it")
        png = atlas.atlas_file(folder, getattr(r, "png_path", "") or "")
        if png:
            st.image(png, width="stretch")
        if getattr(r, "error", ""):
            st.caption(f"No deconvolution: {_plain(r.error)}")


def _plain(text: str) -> str:
    """Text from the atlas (file names, messages) shown as text, never as Markdown (a name
    like ``![](http://...)`` would load an outside image)."""
    import re

    return re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~])", r"\\\1", str(text))


def _labels(folder: Path) -> list[str]:
    """The tags' labels, from the atlas' settings' model when it names them."""
    import json

    try:
        return list(json.loads((folder / "atlas.json").read_text()).get("labels") or [])
    except (OSError, ValueError):
        return []
