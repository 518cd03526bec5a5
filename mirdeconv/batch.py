"""The whole-layer batch job: many tracks x layers x features, auralised to disk.

Output folder layout::

    OUT/index.parquet                one row per (track, layer, feature); failed tracks too
    OUT/summary.json                 totals, failures, settings, model identity
    OUT/<track>/<layer>/f000.wav     one file per feature (or .flac)
    OUT/<track>/<layer>.png          the layer's features as a grid of spectrograms
    OUT/<track>/<layer>/_done.json   written last: this (track, layer) is complete

Every file is written to a temporary name and renamed, so an interrupted job (Ctrl-C, a
crash) leaves only whole files; running the same command again skips every (track,
layer) whose ``_done.json`` matches the settings and model, and redoes the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._io import prepare_folder, save_json
from .analysis import DESCRIPTORS
from .errors import AudioError, InvalidOptionError, MirdeconvError, OutputError

__all__ = ["BatchSettings", "BatchSummary", "run_batch", "INDEX_COLUMNS"]

#: Memory one chunk of the engine's backward pass may use in the batch job, in bytes.
BATCH_MEMORY = 6 << 30

INDEX_COLUMNS = [
    "track", "track_path", "layer", "feature", "status", "error", "dead", "activation_max",
    "activation_mean", "fraction_active", "audio_path", "grid_path", "sr", "duration",
    "method", "target", "reading", "sign", "normalize", "output_sr", "precision", "mode",
    "model_name", "model_family", "model_source", "model_graph_sha256", "representation",
]
#: Descriptor columns of the index (see :mod:`mirdeconv.analysis`); NaN with ``analyse=False``.
DESCRIPTOR_COLUMNS = ["label", "onsets_from", *DESCRIPTORS]
INDEX_COLUMNS += DESCRIPTOR_COLUMNS


@dataclass(frozen=True)
class BatchSettings:
    """What the batch job computes for every track.

    ``layers`` and ``features`` take ``"all"`` or a selection (layer names; feature ranges
    such as ``"0-7,12"``); ``analyse`` adds every feature's descriptors and label
    (:mod:`mirdeconv.analysis`; reference onsets from ``TRACK.jams`` beside the audio, else
    detected by librosa); the other fields are those of :func:`mirdeconv.auralise`.
    """

    layers: tuple[str, ...] | str = "all"
    features: str = "all"
    method: str = "deconvnet"
    target: str = "map"
    reading: str = "mask"
    sign: str = "signed"
    output_sr: str = "track"
    normalize: str = "peak"
    format: str = "wav"
    precision: str = "float32"
    mode: str = "auto"
    analyse: bool = True

    def key(self, model_digest: str) -> str:
        """A digest of everything that changes the output."""
        blob = json.dumps({**asdict(self), "model": model_digest}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class BatchSummary:
    """What a batch run did."""

    out: Path
    n_tracks: int = 0
    n_failed_tracks: int = 0
    n_layers_done: int = 0
    n_layers_skipped: int = 0
    n_files: int = 0
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def track_ids(paths: Iterable[str | os.PathLike]) -> list[tuple[str, Path]]:
    """A folder name per track: its stem, made unique with a short hash when stems repeat."""
    paths = [Path(p) for p in paths]
    stems = [_safe(p.stem) for p in paths]
    out = []
    for p, s in zip(paths, stems):
        if stems.count(s) > 1:
            s = f"{s}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:6]}"
        out.append((s, p))
    return out


def _estimate_bytes(tracks: list[tuple[str, Path]], n_outputs: int, model_sr: int,
                    output_sr: str) -> int:
    import soundfile as sf

    total = 0
    for _, p in tracks:
        try:
            info = sf.info(str(p))
        except Exception:  # reported later, as a failed track
            continue
        sr = info.samplerate if output_sr == "track" and info.samplerate > model_sr else model_sr
        total += int(info.duration * sr * 2) + 44
    return total * n_outputs


class _Worker:
    """Runs (track, layer) units with one model, in this process or a worker process."""

    def __init__(self, model: Any, settings: BatchSettings, out: Path) -> None:
        self.model = model
        self.s = settings
        self.out = out
        self.identity = model.identity()
        self.key = settings.key(self.identity["graph_sha256"])

    def layers(self) -> list[str]:
        names = [li.name for li in self.model.layers]
        if self.s.layers == "all" or self.s.layers == ("all",):
            return names
        wanted = [self.s.layers] if isinstance(self.s.layers, str) else list(self.s.layers)
        for w in wanted:
            self.model.layer(w)  # raises UnknownLayerError naming the layers
        return wanted

    def _base_row(self, tid: str, path: Path) -> dict[str, Any]:
        s, ident = self.s, self.identity
        return {"track": tid, "track_path": str(path), "method": s.method, "target": s.target,
                "reading": s.reading, "sign": s.sign, "normalize": s.normalize,
                "output_sr": s.output_sr, "precision": s.precision, "mode": s.mode,
                "model_name": ident["name"], "model_family": ident["family"],
                "model_source": ident["source"], "model_graph_sha256": ident["graph_sha256"],
                "representation": json.dumps(ident["representation"], sort_keys=True)}

    def done_rows(self, tid: str, layer: str) -> list[dict] | None:
        marker = self.out / tid / _safe(layer) / "_done.json"
        try:
            data = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("key") != self.key:
            return None
        if not all((self.out / r["audio_path"]).is_file() for r in data["rows"]):
            return None
        return data["rows"]

    def run_track(self, tid: str, path: Path, layers: list[str],
                  tick: Callable[[int, str], None]) -> tuple[list[dict], dict[str, int]]:
        """All layers of one track. Returns (index rows, counts)."""
        from . import audio as audio_mod
        from .engine import deconvolve, parse_features

        counts = {"done": 0, "skipped": 0, "files": 0}
        rows: list[dict] = []
        todo = []
        for layer in layers:
            prev = self.done_rows(tid, layer)
            if prev is not None:
                rows.extend(prev)
                counts["skipped"] += 1
                tick(len(prev), layer)
            else:
                todo.append(layer)
        if not todo:
            return rows, counts
        base = self._base_row(tid, path)
        try:
            y, sr = audio_mod.load(path)
            analysis = self.model.representation.analyse(y, sr)
            context = None
            if self.s.analyse:
                from .analysis import Reference, TrackContext

                context = TrackContext(analysis, Reference.for_track(path, y, sr))
        except AudioError as exc:
            rows.append({**base, "layer": None, "feature": None, "status": "error",
                         "error": str(exc)})
            for layer in todo:
                tick(len(parse_features(self.s.features, self.model.layer(layer).n_features)),
                     layer)
            return rows, counts
        # the engine computes layer L+1 while a second thread turns layer L into sound and
        # files (TensorFlow, FFTs and soundfile release the GIL); one layer waits at most
        from concurrent.futures import ThreadPoolExecutor

        pending = None
        with ThreadPoolExecutor(max_workers=1) as finisher:
            for layer in todo:
                info = self.model.layer(layer)
                try:
                    res = deconvolve(self.model, analysis=analysis, layer=layer,
                                     features=self.s.features, method=self.s.method,
                                     target=self.s.target, mode=self.s.mode,
                                     precision=self.s.precision, memory=BATCH_MEMORY)
                except AudioError as exc:  # e.g. shorter than this layer's receptive field
                    rows.append({**base, "layer": layer, "feature": None, "status": "error",
                                 "error": str(exc)})
                    tick(len(parse_features(self.s.features, info.n_features)), layer)
                    continue
                if pending is not None:
                    rows.extend(self._collect(pending.result(), counts, tick))
                pending = finisher.submit(self._finish, tid, layer, res, analysis, y, sr, base,
                                          context)
            if pending is not None:
                rows.extend(self._collect(pending.result(), counts, tick))
        return rows, counts

    @staticmethod
    def _collect(result: tuple[str, list[dict]], counts: dict[str, int],
                 tick: Callable[[int, str], None]) -> list[dict]:
        layer, layer_rows = result
        counts["done"] += 1
        counts["files"] += len(layer_rows) + 1
        tick(len(layer_rows), layer)
        return layer_rows

    def _finish(self, tid: str, layer: str, res: Any, analysis: Any, y: Any, sr: int,
                base: dict, context: Any = None) -> tuple[str, list[dict]]:
        """Auralise one layer's masks, write the audio, the grid and the done-marker (and
        describe every feature when there is a track context)."""
        from .auralise import auralise_masks, write_audio
        from .plot import feature_grid

        folder = prepare_folder(self.out / tid / _safe(layer))
        audio, out_sr, thumbs = auralise_masks(
            res.masks, analysis, audio=y, sr=sr, reading=self.s.reading, sign=self.s.sign,
            output_sr=self.s.output_sr, normalize=self.s.normalize)
        desc = None
        if context is not None:
            from .analysis import add_labels, describe

            same = out_sr == analysis.sr and audio.shape[1] == context.n   # reuse the sound
            desc = add_labels(describe(res, context, reading=self.s.reading, sign=self.s.sign,
                                       audio=audio if same else None))
        layer_rows = []
        for i, k in enumerate(res.features):
            rel = Path(tid) / _safe(layer) / f"f{k:03d}.{self.s.format}"
            write_audio(self.out / rel, audio[i], out_sr)
            layer_rows.append({
                **base, "layer": layer, "feature": int(k), "status": "ok", "error": None,
                "dead": bool(res.dead[i]), "activation_max": float(res.activation_max[i]),
                "activation_mean": float(res.activation_mean[i]),
                "fraction_active": float(res.fraction_active[i]),
                "audio_path": str(rel), "grid_path": str(Path(tid) / f"{_safe(layer)}.png"),
                "sr": int(out_sr), "duration": audio.shape[1] / out_sr,
                **({} if desc is None else
                   {c: _plain(desc[c].iloc[i]) for c in DESCRIPTOR_COLUMNS}),
            })
        feature_grid(thumbs, res.features, res.dead, res.activation_max,
                     self.out / tid / f"{_safe(layer)}.png",
                     title=f"{tid} / {self.model.name} / {res.layer.name} / {self.s.method}, "
                           f"{self.s.target}")
        save_json(folder / "_done.json", {"key": self.key, "rows": layer_rows})
        return layer, layer_rows


# -- worker processes -----------------------------------------------------------------------
_PROC: dict[str, Any] = {}


def _proc_init(model_source: Any, model_options: dict, settings: BatchSettings, out: str,
               queue: Any) -> None:
    from .models import load_model

    _PROC["worker"] = _Worker(load_model(model_source, **model_options), settings, Path(out))
    _PROC["queue"] = queue


def _proc_track(tid: str, path: str, layers: list[str]) -> tuple[list[dict], dict[str, int]]:
    q = _PROC["queue"]
    return _PROC["worker"].run_track(tid, Path(path), layers, lambda n, layer: q.put(n))


def run_batch(
    model_source: Any,
    tracks: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    settings: BatchSettings = BatchSettings(),
    *,
    jobs: int = 1,
    progress: bool = True,
    model_options: dict | None = None,
) -> BatchSummary:
    """Auralise every selected feature of every selected layer for every track.

    Parameters
    ----------
    model_source : str, PathLike or FrozenModel
        A model file (needed for ``jobs > 1``: each process opens it) or an open model.
    tracks : iterable of paths
        Audio files.  Unreadable ones are reported in the index and the summary.
    out : str or PathLike
        Output folder (created).
    settings : BatchSettings
    jobs : int
        Worker processes (each loads the model; tracks are shared out among them).
    progress : bool
        Show a tqdm progress bar (features done).
    model_options : dict
        Passed to :func:`mirdeconv.load_model` (``representation``, ``input_axes``, ...).

    Returns
    -------
    BatchSummary

    Raises
    ------
    OutputError
        The output folder cannot be written, or the disk is too full for the job.
    """
    from .engine import parse_features
    from .models import load_model

    t0 = time.perf_counter()
    model_options = dict(model_options or {})
    if settings.format not in ("wav", "flac"):
        raise InvalidOptionError(f"format must be 'wav' or 'flac'; got {settings.format!r}")
    if jobs < 1:
        raise InvalidOptionError(f"jobs must be >= 1; got {jobs}")
    out = prepare_folder(out)
    model = load_model(model_source, **model_options)
    worker = _Worker(model, settings, out)
    layers = worker.layers()
    per_layer = {ly: len(parse_features(settings.features, model.layer(ly).n_features))
                 for ly in layers}
    tracks = track_ids(tracks)
    need = _estimate_bytes(tracks, sum(per_layer.values()), model.representation.sr,
                           settings.output_sr)
    free = shutil.disk_usage(out).free
    if need > free:
        raise OutputError(
            f"not enough disk space in {out}: the job writes about {_size(need)} and "
            f"{_size(free)} are free")
    total = len(tracks) * sum(per_layer.values())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="auralise", unit="feature")

    def tick(n: int, layer: str = "") -> None:
        if bar is not None:
            bar.update(n)

    summary = BatchSummary(out=out, n_tracks=len(tracks))
    all_rows: list[dict] = []

    def collect(rows: list[dict], counts: dict[str, int]) -> None:
        all_rows.extend(rows)
        summary.n_layers_done += counts["done"]
        summary.n_layers_skipped += counts["skipped"]
        summary.n_files += counts["files"]
        _write_index(out, all_rows)

    try:
        if jobs == 1 or len(tracks) == 1:
            for tid, path in tracks:
                collect(*worker.run_track(tid, path, layers, tick))
        else:
            if not isinstance(model_source, (str, os.PathLike)):
                raise InvalidOptionError("jobs > 1 needs the model as a file path")
            _run_parallel(model_source, model_options, settings, out, tracks, layers, jobs,
                          tick, collect)
    except OSError as exc:
        raise OutputError(f"writing to {out} failed: {exc.strerror or exc}") from None
    finally:
        if bar is not None:
            bar.close()
    failed = [r for r in all_rows if r["status"] == "error"]
    summary.failures = [{"track": r["track_path"], "layer": r["layer"] or "",
                         "error": r["error"]} for r in failed]
    summary.n_failed_tracks = len({r["track"] for r in failed if r["layer"] is None})
    summary.seconds = time.perf_counter() - t0
    save_json(out / "summary.json", {
        "tracks": summary.n_tracks, "failed_tracks": summary.n_failed_tracks,
        "layers_done": summary.n_layers_done, "layers_skipped": summary.n_layers_skipped,
        "files_written": summary.n_files, "seconds": round(summary.seconds, 3),
        "failures": summary.failures, "settings": asdict(settings), "model": worker.identity,
    })
    return summary


def _run_parallel(model_source, model_options, settings, out, tracks, layers, jobs, tick,
                  collect) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
    with ctx.Manager() as manager:
        q = manager.Queue()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_proc_init,
                                 initargs=(os.fspath(model_source), model_options, settings,
                                           str(out), q)) as pool:
            pending = {pool.submit(_proc_track, tid, str(path), layers) for tid, path in tracks}
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        tick(q.get_nowait())
                    except queue_mod.Empty:
                        break
                for fut in done:
                    try:
                        collect(*fut.result())
                    except MirdeconvError:
                        for f in pending:
                            f.cancel()
                        raise
            while True:
                try:
                    tick(q.get_nowait())
                except queue_mod.Empty:
                    break


def _plain(v: Any) -> Any:
    """numpy scalars -> Python (the done-marker is JSON); NaN stays NaN."""
    return v.item() if hasattr(v, "item") else v


def _write_index(out: Path, rows: list[dict]) -> None:
    """``index.parquet`` with one row per (track, layer, feature), written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._io import atomic_path

    cols = {c: [r.get(c) for r in rows] for c in INDEX_COLUMNS}
    table = pa.table(cols)
    with atomic_path(out / "index.parquet") as tmp:
        pq.write_table(table, tmp)


def load_index(out: str | os.PathLike) -> Any:
    """The index of a batch folder as a pandas DataFrame."""
    import pyarrow.parquet as pq

    return pq.read_table(Path(out) / "index.parquet").to_pandas()

