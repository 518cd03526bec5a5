"""The analysis report: ``features.parquet``, ``per_track.parquet`` and an HTML page with plots.

Per layer: a bar chart of the labels, the distributions of the main descriptors, and the
most typical feature of each common label with its auralisation (on the track where it
is loudest) to listen to.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import INVARIANCES, AnalysisResult, typical_features
from .auralisation import auralise
from .options import DeconvOptions, SoundOptions
from .progress import Progress
from .store import atomic_path, feature_file, prepare_folder, save_json, write_audio

__all__ = ["write_report", "PLOTTED"]

#: Descriptors drawn as histograms per layer.
PLOTTED = ("onset_f", "percussive_share", "low_share", "high_share", "centroid_hz",
           "pitch_correlation", "temporal_sparsity", "energy_ratio", *INVARIANCES)


def _parquet(df: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def _figure(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path.name


def _layer_plots(feats: Any, layer: str, folder: Path, stem: str) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = feats[feats["layer"] == layer]
    counts = g["tags"].explode().value_counts()
    fig, ax = plt.subplots(figsize=(6, 0.35 * max(3, len(counts)) + 0.8))
    ax.barh(counts.index[::-1], counts.to_numpy()[::-1], color="#4c72b0")
    ax.set_xlabel("features")
    ax.set_title(f"{layer}: labels ({len(g)} features)")
    labels_png = _figure(fig, folder / f"{stem}_labels.png")
    cols = [c for c in PLOTTED if c in g and np.isfinite(g[c].to_numpy(float)).any()]
    n = len(cols)
    fig, axes = plt.subplots((n + 3) // 4, 4, figsize=(12, 2.2 * ((n + 3) // 4)), squeeze=False)
    for ax, c in zip(axes.ravel(), cols):
        v = g[c].to_numpy(float)
        ax.hist(v[np.isfinite(v)], bins=20, color="#55a868")
        ax.set_title(c, fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    dist_png = _figure(fig, folder / f"{stem}_descriptors.png")
    return labels_png, dist_png


def write_report(result: AnalysisResult, model: Any, out: str | os.PathLike, *,
                 audio: dict[str, tuple[np.ndarray, int]] | None = None, n_typical: int = 3,
                 progress: bool = False) -> dict[str, Path]:
    """Write the analysis to ``out``.

    Parameters
    ----------
    result : AnalysisResult
        From :func:`mirdeconv.analysis.analyse`.
    model : FrozenModel
        The model analysed (to auralise the typical features).
    out : path
        Folder (created).
    audio : dict, optional
        Track name -> (samples, sr), for the typical features' sound (default:
        ``result.audio``).
    n_typical : int
        Typical features per layer (one per most common label).
    progress : bool
        Show a tqdm bar while auralising the typical features.

    Returns
    -------
    dict
        ``features``, ``per_track``, ``report``, ``summary`` -> the files written.
    """
    folder = prepare_folder(out)
    assets = prepare_folder(folder / "report")
    audio = audio if audio is not None else result.audio
    feats, per_track = result.per_feature, result.per_track
    files = {"features": _parquet(feats, folder / "features.parquet"),
             "per_track": _parquet(per_track.drop(columns=["pitch_profile"]), folder / "per_track.parquet")}
    s = result.settings
    parts, jobs = _header(result), []
    for li, layer in enumerate(s["layers"]):
        html_part, wanted = _layer_section(feats, per_track, layer, f"layer{li:02d}", assets,
                                           n_typical, audio or {})
        parts += html_part
        jobs += wanted
    _typical_sounds(model, jobs, audio or {}, s, progress)
    parts.append("</body></html>")
    page = folder / "report.html"
    with atomic_path(page) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    files["report"] = page
    files["summary"] = save_json(folder / "summary.json", {
        **s, "tracks": result.tracks,
        "label_counts": {layer: feats[feats["layer"] == layer]["primary"].value_counts().to_dict()
                         for layer in s["layers"]}})
    return files


def _header(result: AnalysisResult) -> list[str]:
    s = result.settings
    detected = [t["track"] for t in result.tracks if t["onsets_from"] == "librosa"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>mirdeconv analysis: {html.escape(s['model'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>What each feature detects: {html.escape(s['model'])}</h1>",
        f"<p>{len(result.tracks)} tracks ({'the probe set' if s['probe_set'] else 'given tracks'}), "
        f"layers {', '.join(map(html.escape, s['layers']))}; method {s['method']}, target "
        f"{s['target']}, reading {s['reading']}, sign {s['sign']}.</p>",
    ]
    if detected:
        parts.append(
            f"<p><b>Reference onsets were detected by librosa</b> (no annotations) for "
            f"{len(detected)} track(s): {html.escape(', '.join(detected[:10]))}"
            f"{' ...' if len(detected) > 10 else ''}. Onset F-measures there compare with a "
            "detector, not with ground truth.</p>")
    parts.append("<p>Thresholds of the labels: " + ", ".join(
        f"{k} {v:g}" for k, v in s["thresholds"].items()) + "</p>")
    return parts


def _layer_section(feats: Any, per_track: Any, layer: str, stem: str, assets: Path, n_typical: int,
                   audio: dict) -> tuple[list[str], list[tuple]]:
    """One layer's part of the page, and the typical features to auralise for it."""
    labels_png, dist_png = _layer_plots(feats, layer, assets, stem)
    parts = [f"<h2>{html.escape(layer)}</h2>",
             f"<img src='report/{labels_png}' alt='label counts of {html.escape(layer)}'>",
             f"<img src='report/{dist_png}' alt='descriptor distributions of {html.escape(layer)}'>"]
    jobs = []
    typical = typical_features(feats, layer, n_typical)
    if typical:
        parts.append("<table><tr><th>label</th><th>feature</th><th>evidence</th><th>track</th>"
                     "<th>listen</th></tr>")
    for lab, k in typical:
        pt = per_track[(per_track["layer"] == layer) & (per_track["feature"] == k)]
        track = str(pt.sort_values("output_energy", ascending=False)["track"].iloc[0])
        wav = f"{stem}_{feature_file(k, 'wav')}"
        row = feats[(feats["layer"] == layer) & (feats["feature"] == k)].iloc[0]
        player = (f"<audio controls preload='none' src='report/{wav}'></audio>"
                  if track in audio else "(audio not kept)")
        parts.append(f"<tr><td>{html.escape(lab)}</td><td>{k}</td><td>{html.escape(row['label'])}</td>"
                     f"<td>{html.escape(track)}</td><td>{player}</td></tr>")
        if track in audio:
            jobs.append((layer, k, track, assets / wav))
    if typical:
        parts.append("</table>")
    g = feats[feats["layer"] == layer]
    parts.append(f"<details><summary>all {len(g)} features</summary><table><tr><th>feature</th>"
                 "<th>label</th></tr>" + "".join(
                     f"<tr><td>{int(r.feature)}</td><td>{html.escape(r.label)}</td></tr>"
                     for r in g.itertuples()) + "</table></details>")
    return parts, jobs


def _typical_sounds(model: Any, jobs: list[tuple], audio: dict, settings: dict,
                    progress: bool) -> None:
    """Auralise the typical features (one per common label and layer) for the page."""
    opts = DeconvOptions(**{k: settings[k] for k in ("method", "target", "mode", "precision")})
    sound = SoundOptions(reading=settings["reading"], sign=settings["sign"])
    with Progress(progress, len(jobs), "typical features", "feature") as bar:
        for layer, k, track, path in jobs:
            y, sr = audio[track]
            a = auralise(model, y, sr, layer=layer, features=[k], options=opts, sound=sound)
            write_audio(path, a.audio[0], a.sr)
            bar.update()
