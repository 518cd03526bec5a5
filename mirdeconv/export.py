"""Writing deconvolution results to disk: one ``.npy`` and one PNG per feature, plus a summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import prepare_folder, save_json, save_npy
from .errors import OutputError

if TYPE_CHECKING:  # pragma: no cover
    from .engine import DeconvResult

__all__ = ["save_result"]


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
    rep = result.analysis.representation
    items = list(enumerate(result.features))
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=f"writing {result.layer.name}", unit="feature")
    try:
        for i, k in items:
            written.append(save_npy(folder / f"f{k:03d}.npy", result.masks[i]))
            if png:
                from .plot import mask_figure, save_figure

                dead = " (dead: never active)" if result.dead[i] else ""
                fig = mask_figure(result.analysis.features, result.masks[i], rep,
                                  f"{result.model} / {result.layer.name} / feature {k} / "
                                  f"{result.method}, {result.target}{dead}")
                save_figure(fig, folder / f"f{k:03d}.png")
                written.append(folder / f"f{k:03d}.png")
        summary = {
            "model": identity or {"name": result.model},
            "layer": result.layer.name,
            "method": result.method,
            "target": result.target,
            "mode": result.mode,
            "n_frames": int(result.masks.shape[1]),
            "n_bands": int(result.masks.shape[2]),
            "seconds_per_frame": rep.seconds_per_frame,
            "features": [
                {"feature": int(k), "dead": bool(result.dead[i]),
                 "activation_max": float(result.activation_max[i]),
                 "activation_mean": float(result.activation_mean[i]),
                 "fraction_active": float(result.fraction_active[i]),
                 "mask": f"f{k:03d}.npy"}
                for i, k in enumerate(result.features)
            ],
        }
        written.append(save_json(folder / "summary.json", summary))
    except OSError as exc:
        for p in written:
            p.unlink(missing_ok=True)
        raise OutputError(f"writing results to {folder} failed: {exc.strerror or exc}") from None
    return written
