"""The app's Tags view: why did the model say this tag, what does that sound like, how
faithful is the answer, and does it pass the sanity checks?"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from ..errors import MirdeconvError
from ..explanations import ExplainOptions
from ..options import choices
from ..sanity import PASS_BELOW
from . import tags

#: The pickers of the Tags view: fields of :class:`ExplainOptions` (the others keep their
#: defaults; the layer is the sidebar's), each a widget of the same key with an ``x`` before
#: it (``xmethod``).
PICKED = ("method", "output")


def _entry(name: str, row: Any) -> str:
    """One choice in a picker's help: its meaning, and for a method what its row says."""
    text = f"- **{name}**: {getattr(row, 'description', row)}"
    if getattr(row, "layer", False):
        text += " (at the sidebar's layer)"
    return text


def explain_pickers(cols: list[Any], layer: str | None) -> ExplainOptions:
    """One picker per field of :data:`PICKED`, generated from :class:`ExplainOptions` and its
    tables (a method added to :data:`mirdeconv.explanations.ATTRIBUTIONS` appears by itself);
    the options with the sidebar's ``layer`` (kept only by a method that takes one)."""
    values: dict[str, Any] = {}
    for col, c in zip(cols, choices(ExplainOptions, PICKED)):
        keys = list(c.table or ())
        help_text = "\n".join(_entry(k, v) for k, v in (c.table or {}).items())
        if len(keys) > 2:
            values[c.name] = col.selectbox(c.label, keys, index=keys.index(c.default),
                                           key="x" + c.name, help=help_text)
        else:
            values[c.name] = col.radio(c.label, keys, index=keys.index(c.default),
                                       key="x" + c.name, horizontal=True, help=help_text)
    return ExplainOptions(**values, layer=layer)


@st.cache_data(show_spinner="Finding the track's top tags ...", max_entries=8)
def _top_tags(model_key: str, track_key: str, _model: Any, _y: np.ndarray, sr: int):
    return tags.top_tags(_model, _y, sr)


@st.cache_data(show_spinner="Explaining the tag and feeding the explanation back ...",
               max_entries=16)
def _explained(model_key: str, track_key: str, tag: int, options: dict[str, Any],
               _model: Any, _y: np.ndarray, sr: int) -> dict[str, Any]:
    """The explanation's picture and sounds and its faithfulness figures (kept per key;
    ``options``: :meth:`ExplainOptions.key`, what changes the result)."""
    expl = tags.tag_explanation(_model, _y, sr, tag, ExplainOptions(**options))
    png, kept, removed = tags.explanation_media(expl)
    return {"png": png, "kept": kept, "removed": removed, "score": float(expl.scores[0]),
            "probability": float(expl.probabilities[0]), "n_patches": expl.n_patches,
            "faithfulness": tags.faithfulness_figures(_model, expl)}


def tags_view(ctx: dict) -> None:
    """Explain one of the track's top tags: on demand (like the layer view)."""
    view = ctx["model"]
    if not st.toggle("Explain the model's tags for this track", key="tags_on"):
        st.caption("Which parts of the track made the model say a tag: the explanation beside "
                   "the input, its sound and its complement, how faithful it is, and the "
                   "model's sanity check, when switched on.")
        return
    model_key, track_key = ctx["key"][0], ctx["track_key"]
    try:
        tops = _top_tags(model_key, track_key, view.model, ctx["y"], ctx["sr"])
    except MirdeconvError as exc:
        st.info(f"{view.name} has no tags to explain: {exc}")
        return
    cols = st.columns(1 + len(PICKED))
    i = cols[0].selectbox("Tag", range(len(tops)), key="tag",
                          format_func=lambda i: f"{tops[i][1]} ({tops[i][2]:.2f})")
    opts = explain_pickers(cols[1:], ctx["layer"].name)
    try:
        out = _explained(model_key, track_key, tops[i][0], opts.key(), view.model, ctx["y"],
                         ctx["sr"])
    except MirdeconvError as exc:
        st.error(f"{tops[i][1]} cannot be explained with {opts.method}: {exc}")
        return
    st.caption(f"{view.name}: {tops[i][1]}, {opts.output} {out['score']:.3g} (probability "
               f"{out['probability']:.2f}) averaged over {out['n_patches']} patches; "
               f"{opts.method}" + (f" at {opts.layer}" if opts.layer else ""))
    st.image(out["png"], width="stretch")
    left, right = st.columns(2)
    with left:
        st.markdown("**The explanation** (its positive part as a mask on the track)")
        st.audio(out["kept"])
    with right:
        st.markdown("**Its complement** (everything the explanation removes)")
        st.audio(out["removed"])
    _faithfulness(out["faithfulness"])
    _sanity(ctx)


def _faithfulness(figures: dict[str, Any]) -> None:
    import pandas as pd

    st.markdown("**Faithfulness** (the track masked in and out, fed back through the model; "
                "deletion and insertion: areas under the tag's probability as the strongest "
                "bins are removed or restored, beside a random order)")
    st.dataframe(pd.DataFrame(figures["table"]).round(3), hide_index=True)
    if figures["curves"] is not None:
        st.line_chart(pd.DataFrame(figures["curves"]), x="fraction of bins", height=220)
    if figures["note"]:
        st.caption(f"Model-input figures: not measured ({figures['note']}).")


@st.cache_data(show_spinner=False, max_entries=16)
def _sanity_folder(model_key: str, track_key: str, _model: Any, _y: np.ndarray, sr: int):
    """The report's folder (its key hashes the graph and the excerpt: once per model and
    track)."""
    return tags.sanity_folder(_model, _y, sr)


def _sanity(ctx: dict) -> None:
    """The model's sanity check on this track: one click, kept on disk per model and track
    (shown from then on in this session; a check cut short by another choice is not)."""
    view = ctx["model"]
    key = (ctx["key"][0], ctx["track_key"])
    folder = _sanity_folder(*key, view.model, ctx["y"], ctx["sr"])
    done = (folder / "sanity.json").is_file()
    label = ("Show the sanity check (kept from an earlier run)" if done else
             "Run the sanity check of this model (a few minutes; kept on disk)")
    clicked = st.button(label, key="sanity")
    if not clicked and st.session_state.get("sanity_shown") != key:
        return
    bar = st.progress(0.0, text="Sanity check ...")
    try:
        report, png = tags.sanity_report(
            view.model, ctx["y"], ctx["sr"], ctx["track_key"],
            progress=lambda d, t: bar.progress(min(1.0, d / max(t, 1)),
                                               text=f"Sanity check: {d} of {t} maps"))
    except MirdeconvError as exc:
        bar.empty()
        st.error(f"The sanity check could not run: {exc}")
        return
    bar.empty()
    st.session_state["sanity_shown"] = key
    verdicts = report.verdicts()
    for kind, passes in verdicts.items():
        ok = [m for m, p in passes.items() if p]
        bad = [m for m, p in passes.items() if not p]
        st.markdown(f"**{kind.capitalize()}s:** pass: {', '.join(ok) or 'none'}; fail: "
                    f"{', '.join(bad) or 'none'} (a pass: the rank correlation with the trained "
                    f"model's map below {PASS_BELOW} from the top layer re-initialised on)")
    st.image(png, width="stretch")
    st.markdown(report.markdown())
