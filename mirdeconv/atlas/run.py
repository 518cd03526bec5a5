"""Building an atlas on Dask: one task per track (its top-k table, on a worker that opened
the model once), a tree of merges (memory O(units x k)), the atlas written atomically.

``scheduler=None`` starts an embedded ``distributed.LocalCluster`` (worker processes, one
thread each, as many as the machine has cores, each with TensorFlow's thread pools sized to
its share of the cores: :func:`worker_env`); an address (``tcp://host:8786``, or
``DASK_SCHEDULER_ADDRESS``) runs the same graph on an existing cluster, the model shipped
to the workers by its id or path; ``"synchronous"`` runs it in this process (Dask's
synchronous scheduler, for checks and debugging).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from ..audio import load as load_audio
from ..errors import InvalidOptionError, MirdeconvError, message_of
from ..loading import load_model
from ..options import check_number, environment
from ..store import atomic_path, prepare_folder, save_json
from .dissect import add, concepts_of, histograms, labels_table, overlaps, thresholds
from .sources import Track
from .summary import summarise
from .topk import KEY, empty, merge
from .winners import FILE_COLUMNS, feature_descriptors, winner_files

__all__ = ["AtlasSettings", "build_atlas", "track_table", "write_atlas", "load", "check_atlas",
           "worker_env", "FANIN", "Part", "track_part", "check_scheduler", "exit_code"]

#: Tables merged by one reduction task.
FANIN = 8

_MODELS: dict[tuple, Any] = {}   # a worker's open models: (model id, options, mtime) -> model
_MODELS_LOCK = threading.Lock()


@dataclass(frozen=True)
class AtlasSettings:
    """What an atlas is of: the model (id or path, and its ``load_model`` options), the
    layers (empty: every feature layer), winners per unit, the excerpt's seconds, and
    whether the tags are in it."""

    model: str
    layers: tuple[str, ...] = ()
    k: int = 9
    excerpt: float = 3.0
    tags: bool = True
    model_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        check_number("top_k", self.k, "k (winners per unit)")
        check_number("excerpt", self.excerpt, "excerpt (seconds)")


@dataclass(frozen=True)
class Part:
    """Tracks' top-k table and the tracks that have none, with why (a track that cannot be
    decoded, or is not an audio file): what a track's task gives, and what merges give."""

    table: pd.DataFrame
    failures: tuple[tuple[str, str], ...] = ()


def check_scheduler(address: str | None, timeout: float = 3.0) -> None:
    """A Dask scheduler's address that answers (None and ``"synchronous"`` need none), checked
    before any work with a short connection.

    Raises
    ------
    InvalidOptionError
        An address that cannot be read, or nothing listening there, in one line.
    """
    if address in (None, "synchronous"):
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if parts.scheme not in ("tcp", "tls") or not host or not port:
        raise InvalidOptionError(f"cannot read the Dask scheduler address {address!r}: use "
                                 "tcp://HOST:PORT (or 'synchronous')")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise InvalidOptionError(
            f"no Dask scheduler answers at {address} ({exc.strerror or exc}, after at most "
            f"{timeout:g} s): start one (dask scheduler), or leave --scheduler out for a local "
            "cluster") from None


def _model(settings: AtlasSettings) -> Any:
    """The model, opened once per worker process (by id or path: nothing pickled; a model
    file changed since is opened again)."""
    path = Path(settings.model)
    stamp = path.stat().st_mtime_ns if path.exists() else None
    key = (settings.model, settings.model_options, stamp)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(settings.model, **dict(settings.model_options))
        return _MODELS[key]


def track_table(track: Track, settings: AtlasSettings) -> pd.DataFrame:
    """One track's top-k table (a task: runs on a worker)."""
    model = _model(settings)
    layers = settings.layers or tuple(li.name for li in model.layers)
    y, sr = load_audio(track.path, model.representation.sr)   # the file's own rate dropped at once
    return summarise(model, y, sr, track=track.id, layers=layers, k=settings.k,
                     excerpt=settings.excerpt, tags=settings.tags)


#: Bumped when a track's summary changes meaning (older summaries are then recomputed).
SUMMARY_VERSION = 1


def summary_key(settings: AtlasSettings, model: Any) -> str:
    """The folder of the per-track summaries of these settings and this model (its graph's
    content digest, input, representation, patches, normalisation, layers and output): a
    rerun with the same ones reads them instead of recomputing."""
    what = {"version": SUMMARY_VERSION, "model": {
        **model.identity(), "hop": model.patch_hop, "normalization": model.input_normalization,
        "layers": model.layer_tensors, "output": model.output_tensor},
        **{k: v for k, v in dataclasses.asdict(settings).items() if k != "model"}}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _summary_file(folder: Path, track: Track) -> Path:
    """A track's summary file: its id and its file's size, modification and change times
    hashed (a replaced or edited file is summarised again)."""
    st = os.stat(track.path)
    h = hashlib.sha256(f"{track.id}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
                       .encode()).hexdigest()[:20]
    return folder / f"{h}.parquet"


def stored_table(track: Track, settings: AtlasSettings, path: str | None) -> pd.DataFrame:
    """:func:`track_table`, read from ``path`` when a run before made it, else computed and
    written there atomically (a task: runs on a worker; ``path`` None: not kept)."""
    if path is not None and os.path.isfile(path):
        return pd.read_parquet(path)
    table = track_table(track, settings)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            table.to_parquet(tmp, index=False)
    return table


def _tree(tasks: list, combine: Callable, name: str, *args: Any) -> Any:
    # ``name`` carries the build's token: two builds on one scheduler never share a key
    """The tasks' results combined by ``combine(list, *args)`` in a tree of :data:`FANIN`."""
    import dask  # heavy: ~0.2 s and its config; only when a job runs

    level = 0
    while len(tasks) > 1:
        tasks = [dask.delayed(combine, pure=True)(tasks[i:i + FANIN], *args,
                                                  dask_key_name=f"{name}-{level}-{i}")
                 for i in range(0, len(tasks), FANIN)]
        level += 1
    return tasks[0]


def _track_histograms(track: Track, settings: AtlasSettings, layers: tuple[str, ...]) -> dict:
    model = _model(settings)
    y, sr = load_audio(track.path, model.representation.sr)   # the file's own rate dropped at once
    return histograms(model, y, sr, layers)


def _track_overlaps(track: Track, settings: AtlasSettings, concepts: dict, limits: dict) -> dict:
    model = _model(settings)
    y, sr = load_audio(track.path, model.representation.sr)
    return overlaps(model, y, sr, concepts, limits)


def _add_all(parts: list) -> dict:
    out: dict = {}
    for p in parts:
        out = add(out, p)
    return out


def _dissection(tracks: Sequence[Track], settings: AtlasSettings,
                run: Callable[[list], list], token: str) -> pd.DataFrame | None:
    """The Network-Dissection table of the annotated tracks (:mod:`mirdeconv.atlas.dissect`;
    None: no track has annotations): every feature's quantile from merged histograms, then
    its overlaps with every concept, summed in trees of tasks."""
    import dask  # heavy: ~0.2 s and its config; only when a job runs

    annotated = [(t, c) for t in tracks if (c := concepts_of(t.path)) is not None]
    if not annotated:
        return None
    layers = settings.layers or tuple(li.name for li in _model(settings).layers)
    hist = run([_tree([dask.delayed(_track_histograms, pure=True)(
        t, settings, layers, dask_key_name=f"{token}-hist-{i}")
        for i, (t, _) in enumerate(annotated)], _add_all, f"{token}-hist-add")])[0]
    limits = thresholds(hist)
    shared = dask.delayed(limits, traverse=False)          # one node, not a copy per task
    counts = run([_tree([dask.delayed(_track_overlaps, pure=True)(
        t, settings, c, shared, dask_key_name=f"{token}-iou-{i}")
        for i, (t, c) in enumerate(annotated)], _add_all, f"{token}-iou-add")])[0]
    return labels_table(counts)


def track_part(track: Track, settings: AtlasSettings, path: str | None) -> Part:
    """:func:`stored_table` of one track, or the reason it has none (a task: a bad member of
    a collection is recorded, and the atlas is built from the others)."""
    try:
        return Part(stored_table(track, settings, path))
    except (MirdeconvError, OSError) as exc:
        return Part(empty(), ((track.id, message_of(exc)),))


def _merge_many(parts: Sequence[Part], k: int) -> Part:
    out = empty()
    for p in parts:
        out = merge(out, p.table, k)
    return Part(out, tuple(f for p in parts for f in p.failures))


def _track_files(track: Track, rows: pd.DataFrame, settings: AtlasSettings, out: str
                 ) -> pd.DataFrame:
    """The second pass for one track's winners (a task: runs on a worker)."""
    return winner_files(_model(settings), track.path, rows, out)


def worker_env(n_workers: int, cores: int | None = None) -> dict[str, str]:
    """The environment of a local worker process: TensorFlow's thread pools (and oneDNN's
    OpenMP) sized to its share of the machine's cores, so that the workers do not each
    take every core."""
    per = str(max(1, (cores or os.cpu_count() or 1) // max(1, n_workers)))
    return {"TF_NUM_INTRAOP_THREADS": per, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": per}


@contextmanager
def _runner(scheduler: str | None, n_workers: int | None, progress: bool
            ) -> Iterator[Callable[[list], list]]:
    """A function that computes a list of Dask delayed objects on the chosen scheduler."""
    import dask  # heavy: ~0.2 s and its config; only when a job runs

    if scheduler == "synchronous":
        yield lambda objs: list(dask.compute(*objs, scheduler="synchronous"))
        return
    from distributed import Client, LocalCluster  # heavy: ~0.6 s (tornado, msgpack, ...)
    from distributed import progress as dask_progress

    cluster = None
    if scheduler is None:
        n = n_workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0", env=worker_env(n))
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            if progress:
                print(f"Dask dashboard: {client.dashboard_link}")

            def run(objs: list) -> list:
                futures = client.compute(objs, retries=2)
                if progress:
                    dask_progress(futures)
                return client.gather(futures)

            yield run
    finally:
        if cluster is not None:
            cluster.close()


def build_atlas(tracks: Sequence[Track], settings: AtlasSettings, *,
                out: str | os.PathLike | None = None, scheduler: str | None = None,
                n_workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """The atlas' top-k table of ``tracks`` (and, with ``out``, its files).

    Parameters
    ----------
    tracks : sequence of Track
    settings : AtlasSettings
    out : path, optional
        Write every winner's files there (:mod:`mirdeconv.atlas.winners`), then
        ``atlas.parquet`` and ``atlas.json``; keep each track's summary in
        ``summaries/<settings and model>/`` so that a rerun (after a crash, or with more
        tracks) computes only the tracks it has not summarised.
    scheduler : str, optional
        None (or ``DASK_SCHEDULER_ADDRESS`` unset): an embedded LocalCluster; an address:
        that cluster; ``"synchronous"``: this process.
    n_workers : int, optional
        The LocalCluster's worker processes (default: the machine's cores).
    progress : bool
        Show ``distributed``'s progress bars and the dashboard's address.

    Returns
    -------
    pandas.DataFrame
        :data:`mirdeconv.atlas.topk.COLUMNS` and ``rank`` (with ``out``, also the files'
        columns), sorted by unit and rank.
    """
    import dask  # heavy: ~0.2 s and its config; only when a job runs

    scheduler = scheduler or environment().dask_scheduler
    check_scheduler(scheduler)
    store = None
    if out is not None:                           # per-track summaries kept: a rerun resumes
        store = Path(out).resolve() / "summaries" / summary_key(settings, _model(settings))
    paths = [None if store is None else str(_summary_file(store, t)) for t in tracks]
    token = uuid.uuid4().hex[:12]                 # this build's keys on a shared scheduler
    tasks = [dask.delayed(track_part, pure=True)(t, settings, p,
                                                 dask_key_name=f"{token}-track-{i}")
             for i, (t, p) in enumerate(zip(tracks, paths))]
    tasks = [_tree(tasks, _merge_many, f"{token}-merge", settings.k)] if tasks else []
    with _runner(scheduler, n_workers, progress) as run:
        part = run([tasks[0]])[0] if tasks else Part(empty())
        table, failures = part.table, [{"track": t, "error": e} for t, e in part.failures]
        if "rank" not in table:                   # no track went in
            table = table.assign(rank=pd.Series(dtype="int64"))
        failed = {f["track"] for f in failures}
        tracks = [t for t in tracks if t.id not in failed]
        labels = _dissection(tracks, settings, run, token)
        if labels is not None:
            best = labels.groupby(["layer", "unit"], sort=False).head(1)[
                ["layer", "unit", "label", "label_iou"]]
            table = table.merge(best.assign(kind="feature"), on=["kind", "layer", "unit"],
                                how="left")
        if out is None:
            table.attrs["failures"] = failures
            return table
        generation = _generation(table)
        folder = str(Path(out).resolve() / FILES / generation)
        by_id = {t.id: t for t in tracks}
        jobs = [dask.delayed(_track_files, pure=True)(by_id[tid], rows, settings, folder,
                                                       dask_key_name=f"{token}-files-{i}")
                for i, (tid, rows) in enumerate(table.groupby("track", sort=True))]
        parts = run(jobs)
    table = pd.concat(parts, ignore_index=True) if parts else table.assign(
        **{c: pd.Series(dtype=object) for c in FILE_COLUMNS})
    for c in FILE_COLUMNS[:3]:                    # paths relative to the atlas' folder
        table[c] = [f"{FILES}/{generation}/{p}" if p else "" for p in table[c]]
    table = table.sort_values(KEY + ["rank"], kind="mergesort").reset_index(drop=True)
    write_atlas(table, out, settings, labels=list(_model(settings).labels or []))
    files = Path(out) / FILES
    for old in files.iterdir() if files.is_dir() else ():   # the table no longer lists them
        if old.name != generation and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    with atomic_path(Path(out) / "features.parquet") as tmp:
        feature_descriptors(table).to_parquet(tmp, index=False)
    if labels is not None:
        with atomic_path(Path(out) / "dissection.parquet") as tmp:
            labels.to_parquet(tmp, index=False)
    else:                                         # an earlier run's labels are not this one's
        (Path(out) / "dissection.parquet").unlink(missing_ok=True)
    save_json(Path(out) / "summary.json", {"tracks": len(tracks) + len(failures),
                                           "failures": failures,
                                           "exit_code": exit_code(len(tracks), len(failures))})
    table.attrs["failures"] = failures
    return table


def exit_code(done: int, failed: int) -> int:
    """0 when every track went in, 1 when some could not, 2 when none could (as the batch
    job's)."""
    return 0 if not failed else 2 if not done else 1


#: The winners' files live in ``files/<generation>/``: a generation is named by the winners
#: themselves, so a changed table gets a new folder (the table in place still lists the old
#: files, whole, until the new table replaces it; then the old folder goes).
FILES = "files"


def _generation(table: pd.DataFrame) -> str:
    """The name of the winners' files folder: a hash of who won, where."""
    key = table[["kind", "layer", "unit", "rank", "track", "start", "end"]].astype(str)
    return hashlib.sha256("\n".join(key.agg("\t".join, axis=1)).encode()).hexdigest()[:12]


def write_atlas(table: pd.DataFrame, out: str | os.PathLike, settings: AtlasSettings,
                labels: list[str] | None = None) -> Path:
    """``atlas.parquet`` (atomically) and ``atlas.json`` (the settings and the model's class
    labels) in ``out``."""
    folder = prepare_folder(out)
    with atomic_path(folder / "atlas.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    save_json(folder / "atlas.json", {**dataclasses.asdict(settings), "labels": labels or []})
    return folder / "atlas.parquet"


def check_atlas(folder: str | os.PathLike) -> dict[str, list[str]]:
    """Compare an atlas folder with its table: problems by kind (``missing table``,
    ``missing file`` (a path the table lists), ``unlisted file`` (a winner's file the table
    does not list), ``unreadable summary``); empty lists: whole.
    """
    folder = Path(folder)
    problems: dict[str, list[str]] = {"missing table": [], "missing file": [],
                                      "unreadable summary": []}
    try:
        table = load(folder)
    except (OSError, ValueError) as exc:
        problems["missing table"].append(f"{folder / 'atlas.parquet'}: {exc}")
        return problems
    listed = set()
    for col in ("excerpt_path", "audio_path", "png_path"):
        for rel in table.get(col, pd.Series(dtype=object)).dropna():
            if rel:
                listed.add(rel)
                if not (folder / rel).is_file():
                    problems["missing file"].append(rel)
    problems["unlisted file"] = sorted(
        p.relative_to(folder).as_posix() for p in (folder / FILES).rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in listed)
    for p in sorted((folder / "summaries").rglob("*.parquet")):
        try:
            pd.read_parquet(p)
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a broken file
            problems["unreadable summary"].append(f"{p.relative_to(folder)}: {exc}")
    return problems


def load(folder: str | os.PathLike) -> pd.DataFrame:
    """An atlas' table (pandas), from its folder."""
    return pd.read_parquet(Path(folder) / "atlas.parquet")
