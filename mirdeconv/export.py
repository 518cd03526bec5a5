"""Writing deconvolution results to disk: one ``.npy`` and one PNG per feature, plus a summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .engine import DeconvResult
from .errors import OutputError
from .progress import Progress
from .store import feature_file, prepare_folder, save_json, save_npy

__all__ = ["save_result", "summary"]


def summary(result: DeconvResult, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``summary.json`` holds: the model, the settings, every feature's statistics."""
    return {
        "model": identity or {"name": result.model},
        "layer": result.layer.name,
        **result.options.key(),
        "mode": result.mode,
        "n_frames": int(result.masks.shape[1]),
        "n_bands": int(result.masks.shape[2]),
        "seconds_per_frame": result.track.representation.seconds_per_frame,
        "features": [
            {"feature": int(k), "dead": bool(result.dead[i]),
             "dead_reason": str(result.dead_reason[i]),
             "activation_max": float(result.activation_max[i]),
             "activation_mean": float(result.activation_mean[i]),
             "fraction_active": float(result.fraction_active[i]),
             "mask": feature_file(k, "npy")}
            for i, k in enumerate(result.features)
        ],
    }


def _figure(result: DeconvResult, i: int, path: Path) -> Path:
    from .plot import mask_figure, save_figure

    k = result.features[i]
    dead = f" (dead: {result.dead_reason[i]})" if result.dead[i] else ""
    fig = mask_figure(result.track.frames, result.masks[i], result.track.representation,
                      f"{result.model} / {result.layer.name} / feature {k} / "
                      f"{result.method}, {result.target}{dead}")
    save_figure(fig, path)
    return path


def save_result(
    result: DeconvResult,
    folder: str | os.PathLike,
    *,
    png: bool = True,
    identity: dict[str, Any] | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write ``f{k:03d}.npy`` (the mask, float32, shape (n_frames, n_bands)), ``f{k:03d}.png``
    (input beside mask) for every feature, and ``summary.json`` (settings, statistics).

    Every file is written atomically; if writing fails, the files this call wrote are removed
    and :class:`~mirdeconv.errors.OutputError` is raised.

    Returns
    -------
    list of Path
        The files written.
    """
    folder = prepare_folder(folder)
    written: list[Path] = []
    try:
        with Progress(progress, len(result.features), f"writing {result.layer.name}",
                      "feature") as bar:
            for i, k in enumerate(result.features):
                written.append(save_npy(folder / feature_file(k, "npy"), result.masks[i]))
                if png:
                    written.append(_figure(result, i, folder / feature_file(k, "png")))
                bar.update()
        written.append(save_json(folder / "summary.json", summary(result, identity)))
    except OSError as exc:
        for p in written:
            p.unlink(missing_ok=True)
        raise OutputError(f"writing results to {folder} failed: {exc.strerror or exc}") from None
    return written
