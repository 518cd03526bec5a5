"""The whole-layer batch job: many tracks x layers x features, auralised to disk.

Output folder layout::

    OUT/index.parquet                one row per (track, layer, feature); failed tracks too
    OUT/<track>/.claim               held (flock, with its pid) by the run working on the track
    OUT/summary.json                 totals, failures, settings, model identity
    OUT/<track>/<layer>/f000.wav     one file per feature (or .flac)
    OUT/<track>/<layer>.png          the layer's features as a grid of spectrograms
    OUT/<track>/<layer>/_done.json   written last: this (track, layer) is complete

Every file is written to a temporary name and renamed, so an interrupted job (Ctrl-C, a
crash) leaves only whole files; running the same command again skips every (track,
layer) whose ``_done.json`` matches the settings and model, and redoes the rest.  Runs
into one folder merge their rows into the one index and claim each track while they work
on it (:mod:`mirdeconv.runstore`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import audio as audio_mod
from .analysis import TrackContext, add_labels, describe
from .analysis.context import track_reference
from .auralisation import auralise_result, features_per_group
from .engine import deconvolve_request, release_pages, resolve_request, selection, spill_track
from .engine.memory import TRACK_SHARE, spill
from .errors import (
    AudioError,
    InvalidOptionError,
    MemoryBudgetError,
    MirdeconvError,
    OutputError,
    TruncationWarning,
)
from .loading import load_model
from .options import DeconvOptions, SoundOptions, check_number
from .plot import feature_grid
from .progress import Progress
from .runstore import AUDIO_SUFFIXES, DESCRIPTOR_COLUMNS, INDEX_COLUMNS, claim, load_index, write_index
from .store import feature_file, prepare_folder, save_json, write_audio

__all__ = ["BatchSettings", "BatchSummary", "run_batch", "INDEX_COLUMNS", "load_index"]



@dataclass(frozen=True)
class BatchSettings:
    """What the batch job computes for every track.

    ``layers`` and ``features`` take ``"all"`` or a selection (layer names; feature ranges
    such as ``"0-7,12"``); ``deconv`` and ``sound`` are the options of
    :func:`mirdeconv.auralise`; ``analyse`` adds every feature's descriptors and label
    (:mod:`mirdeconv.analysis`; reference onsets from ``TRACK.jams`` beside the audio, else
    detected by librosa); ``allow_truncated`` processes tracks that are cut short (what
    decodes of them) instead of refusing them, and flags them in the index (``truncated``).
    """

    layers: tuple[str, ...] | str = "all"
    features: str = "all"
    deconv: DeconvOptions = DeconvOptions()
    sound: SoundOptions = SoundOptions()
    analyse: bool = True
    allow_truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Everything that changes the output, flat (the memory budget does not, nor whether
        cut-short tracks are let through: those are flagged per track)."""
        return {"layers": self.layers, "features": self.features, **self.deconv.key(),
                **self.sound.key(), "analyse": self.analyse}

    def key(self, model_digest: str) -> str:
        """A digest of everything that changes the output, and of the model."""
        blob = json.dumps({**self.to_dict(), "model": model_digest}, sort_keys=True)
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

    @property
    def exit_code(self) -> int:
        """0: everything done; 1: some tracks (or layers) failed, the rest is done; 2: nothing
        could be done (every track failed)."""
        if not self.failures:
            return 0
        return 2 if self.n_layers_done + self.n_layers_skipped == 0 else 1


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


#: A layer whose masks hold more than 1/OVERLAP_SHARE of the memory budget is finished
#: before the next layer is deconvolved.
OVERLAP_SHARE = 16


class _Stopped(Exception):
    """A layer's writing stopped half-way (Ctrl-C): no done-marker, redone next time."""


class _Worker:
    """Runs (track, layer) units with one model, in this process or a worker process."""

    def __init__(self, model: Any, settings: BatchSettings, out: Path) -> None:
        self.model = model
        self.s = settings
        self.out = out
        #: Where each (track, layer)'s memory plan is reported before its work (None: nowhere;
        #: :func:`run_batch` sets its progress bar's ``write`` in this process).
        self.log: Callable[[str], None] | None = None
        #: Called with a track's rows after each of its layers (the index kept current).
        self.on_layer: Callable[[list[dict]], None] | None = None
        #: Set on Ctrl-C: the layer being written stops at its next group of features.
        self.stop = threading.Event()
        self.identity = model.identity()
        self.key = settings.key(self.identity["graph_sha256"])
        #: The feature selection, read once; its indices per layer (:meth:`features_of`).
        self.selection = selection(settings.features)
        self._features: dict[str, tuple[int, ...]] = {}

    def layers(self) -> list[str]:
        names = [li.name for li in self.model.layers]
        if self.s.layers == "all" or self.s.layers == ("all",):
            return names
        wanted = [self.s.layers] if isinstance(self.s.layers, str) else list(self.s.layers)
        for w in wanted:
            self.model.layer(w)  # raises UnknownLayerError naming the layers
        return wanted

    def _base_row(self, tid: str, path: Path) -> dict[str, Any]:
        d, snd, ident = self.s.deconv, self.s.sound, self.identity
        return {"track": tid, "track_path": str(path), **d.key(), "reading": snd.reading,
                "sign": snd.sign, "normalize": snd.normalize, "output_sr": snd.output_sr,
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

    def run_track(self, tid: str, path: Path, layers: list[str], tick: Callable[[int, str], None],
                  wait: bool = True) -> tuple[list[dict], dict[str, int]] | None:
        """All layers of one track, under the track's claim (:func:`mirdeconv.runstore.claim`).
        Returns (index rows, counts), or None when another run holds the track and
        ``wait`` is False."""
        with claim(self.out, tid, wait=wait) as held:
            return self._run_track(tid, path, layers, tick) if held else None

    def _run_track(self, tid: str, path: Path, layers: list[str],
                   tick: Callable[[int, str], None]) -> tuple[list[dict], dict[str, int]]:
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
            loaded, base["truncated"] = self._load(path)
        except AudioError as exc:
            rows.append({**base, "layer": None, "feature": None, "status": "error",
                         "error": str(exc)})
            for layer in todo:
                tick(self.features_of(layer), layer)
            return rows, counts
        rows.extend(self._layers(tid, todo, loaded, base, counts, tick))
        return rows, counts

    def features_of(self, layer: str) -> int:
        """How many features of ``layer`` the settings select."""
        if layer not in self._features:
            self._features[layer] = self.selection.indices(self.model.layer(layer).n_features)
        return len(self._features[layer])

    def _load(self, path: Path) -> tuple[tuple[Any, ...], str]:
        """The track (samples, rate), its model input (a long track's STFT and audio spilled to
        memory maps, and so its samples at their own rate: read block by block), and its
        context for the descriptors (onsets detected block by block); and why it is flagged
        as truncated (a file a little short of what its header declares, or any with
        ``allow_truncated``; ``""``: whole)."""
        with warnings.catch_warnings():          # the flag says it, in the index
            warnings.simplefilter("ignore", TruncationWarning)
            got = audio_mod.decode(path, allow_truncated=self.s.allow_truncated)
        y, sr, budget = got.y, got.sr, self.s.deconv.budget
        track = spill_track(self.model.representation.prepare(y, sr), budget)
        if y.nbytes > budget // TRACK_SHARE:
            y = spill(y)
        context = TrackContext(track, track_reference(path, y, sr, budget)) \
            if self.s.analyse else None
        return (y, sr, track, context), (got.reason or "truncated") if got.truncated else ""

    def _layers(self, tid: str, todo: list[str], loaded: tuple, base: dict,
                counts: dict[str, int], tick: Callable[[int, str], None]) -> list[dict]:
        """Deconvolve layer L+1 while a second thread turns layer L into sound and files
        (TensorFlow, FFTs and soundfile release the GIL); one layer waits at most.  A long
        track's layers go one after the other (masks over :data:`OVERLAP_SHARE` of the
        budget), so that two layers' work never adds up."""
        from concurrent.futures import ThreadPoolExecutor

        y, sr, track, context = loaded
        rows: list[dict] = []
        pending = None
        def collect(result: tuple[str, list[dict]]) -> None:
            rows.extend(self._collect(result, counts, tick))
            if self.on_layer is not None:
                self.on_layer(rows)

        with ThreadPoolExecutor(max_workers=1) as finisher:
            try:
                for layer in todo:
                    opts = self._engine_options(layer, track, context)
                    n = self.features_of(layer)
                    try:
                        req = resolve_request(self.model, track=track, layer=layer, options=opts,
                                      features=self.selection)
                        if self.log is not None:     # the estimate first (the engine's plan)
                            self.log(f"{tid} / {layer}: {req.plan.describe()}")
                        # the deconvolution is half of a layer's work on the bar, its sounds
                        # and files the other half
                        res = deconvolve_request(
                            req, progress=lambda d, t, n=n, lay=layer: tick(0, lay, (d, t, n)))
                    except (AudioError, MemoryBudgetError) as exc:  # e.g. shorter than this
                        # layer's receptive field, or a piece of this long track over the budget
                        rows.append({**base, "layer": layer, "feature": None, "status": "error",
                                     "error": str(exc)})
                        tick(n, layer)
                        continue
                    if pending is not None:
                        collect(pending.result())
                    pending = finisher.submit(self._finish, tid, layer, res, y, sr, base, context)
                    if res.masks.nbytes > self.s.deconv.budget // OVERLAP_SHARE:
                        collect(pending.result())
                        pending = None
                if pending is not None:
                    collect(pending.result())
            except BaseException:
                self.stop.set()                  # the layer being written stops soon
                if pending is not None:          # ... or had finished: it is listed
                    with contextlib.suppress(BaseException):
                        collect(pending.result())
                raise
        return rows

    def _engine_options(self, layer: str, track: Any, context: Any) -> DeconvOptions:
        """The settings' options with what this track holds anyway (its STFT and frames, its
        analysis context, the layer's masks) taken off the memory budget, down to an eighth
        of it: one budget for the whole job."""
        opts = self.s.deconv
        n_masks = self.features_of(layer) * track.n_frames * self.model.representation.n_bands
        held = _nbytes(track, context) + 4 * n_masks
        return dataclasses.replace(opts, memory=max(opts.budget // 8, opts.budget - held))

    @staticmethod
    def _collect(result: tuple[str, list[dict]], counts: dict[str, int],
                 tick: Callable[[int, str], None]) -> list[dict]:
        layer, layer_rows = result
        counts["done"] += 1
        counts["files"] += len(layer_rows) + 1
        tick(len(layer_rows), layer)
        return layer_rows

    def _finish(self, tid: str, layer: str, res: Any, y: Any, sr: int, base: dict,
                context: Any = None) -> tuple[str, list[dict]]:
        """Auralise one layer's masks, write the audio, the grid and the done-marker (and
        describe every feature when there is a track context)."""
        folder = prepare_folder(self.out / tid / _safe(layer))
        for old in [*folder.glob("f*.*"), folder / "_done.json"]:   # an earlier run's, redone
            if old.suffix in (*AUDIO_SUFFIXES, ".json"):
                old.unlink(missing_ok=True)
        grid = Path(tid) / f"{_safe(layer)}.png"
        layer_rows, thumbs, descs = [], [], []
        group = features_per_group(len(y) if self.s.sound.output_sr == "track" else
                                   len(res.track.audio))
        for g0 in range(0, len(res.features), group):     # a few features' sounds at a time
            if self.stop.is_set():               # no half-written layer stays on disk
                for row in layer_rows:
                    (self.out / row["audio_path"]).unlink(missing_ok=True)
                raise _Stopped(f"{tid} / {layer}")
            part = res.select(slice(g0, g0 + group))
            aur = auralise_result(part, y, sr, self.s.sound)
            thumbs.append(aur.thumbnails)
            if context is not None:
                same = aur.sr == res.track.sr and aur.audio.shape[1] == context.n  # reuse it
                descs.append(describe(part, context, sound=self.s.sound, chunk=group,
                                      audio=aur.audio if same else None))
            for i, k in enumerate(part.features):
                rel = Path(tid) / _safe(layer) / feature_file(k, self.s.sound.format)
                write_audio(self.out / rel, aur.audio[i], aur.sr)
                layer_rows.append(self._row(base, layer, part, i, rel, grid, aur))
            release_pages(res.masks)            # (a long track's: read again from the file)
        if descs:
            desc = add_labels(pd.concat(descs, ignore_index=True))
            for i, row in enumerate(layer_rows):
                row.update({c: _plain(desc[c].iloc[i]) for c in DESCRIPTOR_COLUMNS})
        feature_grid(np.concatenate(thumbs), res.features, res.dead, res.activation_max,
                     self.out / grid, title=f"{tid} / {self.model.name} / {res.layer.name} / "
                                            f"{res.method}, {res.target}")
        save_json(folder / "_done.json", {"key": self.key, "rows": layer_rows})
        return layer, layer_rows

    @staticmethod
    def _row(base: dict, layer: str, part: Any, i: int, rel: Path, grid: Path, aur: Any
             ) -> dict[str, Any]:
        """The index row of one feature's sound (the descriptors are added later)."""
        return {
            **base, "layer": layer, "feature": int(part.features[i]), "status": "ok",
            "error": None, "dead": bool(part.dead[i]), "dead_reason": str(part.dead_reason[i]),
            "activation_max": float(part.activation_max[i]),
            "activation_mean": float(part.activation_mean[i]),
            "fraction_active": float(part.fraction_active[i]),
            "audio_path": str(rel), "grid_path": str(grid),
            "sr": int(aur.sr), "duration": aur.audio.shape[1] / aur.sr,
        }


# -- worker processes -----------------------------------------------------------------------
_PROC: dict[str, Any] = {}


def _proc_init(model_source: Any, model_options: dict, settings: BatchSettings, out: str,
               queue: Any) -> None:
    _PROC["worker"] = _Worker(load_model(model_source, **model_options), settings, Path(out))
    _PROC["queue"] = queue


def _proc_track(tid: str, path: str, layers: list[str]) -> tuple[list[dict], dict[str, int]]:
    q = _PROC["queue"]                 # whole layers only (their features, each two steps)
    return _PROC["worker"].run_track(
        tid, Path(path), layers, lambda n, layer, part=None: q.put(0 if part else n))


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
    t0 = time.perf_counter()
    model_options = dict(model_options or {})
    check_number("jobs", jobs)
    selection(settings.features)                   # its syntax, before the model loads
    out = prepare_folder(out)
    model = load_model(model_source, **model_options)
    worker = _Worker(model, settings, out)
    layers = worker.layers()
    tracks = track_ids(tracks)
    per_track = sum(worker.features_of(ly) for ly in layers)
    _check_disk(out, _estimate_bytes(tracks, per_track, model.representation.sr,
                                     settings.sound.output_sr))
    summary = BatchSummary(out=out, n_tracks=len(tracks))
    all_rows: list[dict] = []

    def collect(rows: list[dict], counts: dict[str, int]) -> None:
        all_rows.extend(rows)
        summary.n_layers_done += counts["done"]
        summary.n_layers_skipped += counts["skipped"]
        summary.n_files += counts["files"]
        write_index(out, all_rows)

    try:
        # two steps per feature of a layer: deconvolved (counted piece by piece), then
        # auralised and written
        with Progress(progress, 2 * len(tracks) * per_track, "auralise", "step") as bar:
            worker.log = bar.write if progress is True else None
            begun: dict[str, int] = {}

            def tick(n: int, layer: str = "", part: tuple[int, int, int] | None = None) -> None:
                if part is not None:            # deconvolution: (done, total, features)
                    done, total, feats = part
                    now = feats * done // max(total, 1)
                    bar.update(now - begun.get(layer, 0))
                    begun[layer] = now
                else:                           # n features whole (their first steps counted)
                    bar.update(2 * n - begun.pop(layer, 0))

            worker.on_layer = lambda rows: write_index(out, all_rows + rows)

            if jobs == 1 or len(tracks) == 1:
                busy = []
                for tid, path in tracks:
                    done = worker.run_track(tid, path, layers, tick, wait=False)
                    if done is None:
                        busy.append((tid, path))
                    else:
                        collect(*done)
                for tid, path in busy:      # another run has them: wait, then skip its work
                    collect(*worker.run_track(tid, path, layers, tick))
            else:
                if not isinstance(model_source, str | os.PathLike):
                    raise InvalidOptionError("jobs > 1 needs the model as a file path")
                _run_parallel(model_source, model_options, settings, out, tracks, layers, jobs,
                              tick, collect)
    except OSError as exc:
        raise OutputError(f"writing to {out} failed: {exc.strerror or exc}") from None
    except KeyboardInterrupt:                   # what is done stays listed
        write_index(out, all_rows)
        raise
    summary.seconds = time.perf_counter() - t0
    _write_summary(summary, all_rows, settings, worker.identity)
    return summary


def _check_disk(out: Path, need: int) -> None:
    free = shutil.disk_usage(out).free
    if need > free:
        raise OutputError(f"not enough disk space in {out}: the job writes about {_size(need)} "
                          f"and {_size(free)} are free")


def _write_summary(summary: BatchSummary, rows: list[dict], settings: BatchSettings,
                   identity: dict) -> None:
    """Failures into the summary, and ``summary.json``."""
    failed = [r for r in rows if r["status"] == "error"]
    summary.failures = [{"track": r["track_path"], "layer": r["layer"] or "",
                         "error": r["error"]} for r in failed]
    summary.n_failed_tracks = len({r["track"] for r in failed if r["layer"] is None})
    save_json(summary.out / "summary.json", {
        "tracks": summary.n_tracks, "failed_tracks": summary.n_failed_tracks,
        "layers_done": summary.n_layers_done, "layers_skipped": summary.n_layers_skipped,
        "files_written": summary.n_files, "seconds": round(summary.seconds, 3),
        "exit_code": summary.exit_code, "failures": summary.failures,
        "settings": settings.to_dict(), "model": identity,
    })


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


def _nbytes(*objs: Any) -> int:
    """Bytes of the numpy arrays among some objects' attributes (shared ones once) that are
    held in RAM (a memory map's pages go back to its file as it is read)."""
    seen, total = set(), 0
    for v in (v for obj in objs if obj is not None for v in vars(obj).values()):
        values = v.values() if isinstance(v, dict) else v if isinstance(v, tuple) else [v]
        for a in values:
            a = a[0] if isinstance(a, tuple) and a else a
            if isinstance(a, np.ndarray) and not isinstance(a, np.memmap) and id(a) not in seen:
                seen.add(id(a))
                total += a.nbytes
    return total


def _plain(v: Any) -> Any:
    """numpy scalars -> Python (the done-marker is JSON); NaN stays NaN."""
    return v.item() if hasattr(v, "item") else v

