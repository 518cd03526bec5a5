"""Output files and folders: every file appears whole or not at all, in one layout."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputError

__all__ = ["atomic_path", "save_npy", "save_json", "prepare_folder", "file_lock", "feature_file",
           "write_audio", "pcm16"]


def feature_file(feature: int, suffix: str) -> str:
    """The file name of one feature's output: ``f007.wav``, ``f007.npy``, ... (the layout of
    every output folder: deconvolutions, auralisations, the batch job, the app's zip)."""
    return f"f{int(feature):03d}.{suffix.lstrip('.')}"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save an array as ``.npy`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Save JSON atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    return path


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextmanager
def file_lock(path: str | os.PathLike, *, blocking: bool = True, owner: str = ""
              ) -> Iterator[bool]:
    """An exclusive inter-process lock on ``path`` (``fcntl.flock``: released by the kernel
    when its holder exits or dies, so a crashed run never leaves a stale lock behind).

    Parameters
    ----------
    blocking : bool
        Wait for the lock; otherwise yield False at once when another process holds it.
    owner : str
        Written into the file while held (e.g. ``"pid 1234"``), for people looking.

    Yields
    ------
    bool
        Whether the lock is held.
    """
    import fcntl  # POSIX only: at the top it would stop `import mirdeconv` on Windows

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            if owner:
                fh.seek(0)
                fh.truncate()
                fh.write(owner + "\n")
                fh.flush()
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and parents) and check that files can be written in it.

    Raises
    ------
    OutputError
        The folder cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".mirdeconv-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return folder


def remove_empty_folders(folder: str | os.PathLike) -> None:
    """Remove ``folder`` and the folders below it that hold no file (what a command made
    before it was refused): never a file, never a folder with one."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()),
                      key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()                  # only succeeds when empty
    with contextlib.suppress(OSError):
        folder.rmdir()


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Samples in [-1, 1] as 16-bit PCM, rounded and clipped (quantised here: libsndfile's own
    float conversion is 2x slower)."""
    return np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


#: Samples quantised and written at once by :func:`write_audio`.
WRITE_BLOCK = 1 << 18


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int) -> Path:
    """Write one signal (n_samples,) as WAV or FLAC (by suffix), 16-bit PCM, atomically, in
    blocks of :data:`WRITE_BLOCK` samples.

    Raises
    ------
    OutputError
        Unsupported suffix, or the file cannot be written (e.g. the disk is full).
    """
    import soundfile as sf  # heavy: ~0.1 s (libsndfile through cffi); only to write audio

    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path.name}: audio is written as .wav or .flac")
    try:
        with atomic_path(path) as tmp, sf.SoundFile(tmp, "w", int(sr), 1, "PCM_16",
                                                    format=fmt) as f:
            for s0 in range(0, len(audio), WRITE_BLOCK):   # a long track: bounded copies
                f.write(pcm16(audio[s0:s0 + WRITE_BLOCK]))
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return path
