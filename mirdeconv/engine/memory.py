"""How much of a track goes through the graph at once: the memory plan under one budget.

The engine measures, on a probe (512 frames of the track, or one patch), what one piece of
work holds per frame: the layer's output (as a tensor, its numpy copy and the statistics'
temporaries), the tensors the forward pass saves for the backward pass (exact sizes), every
tensor it makes on the way (``Program.forward``'s ``made``: a bound on what it holds at
once), and the gradients of one feature's backward pass (``elems``, with about three
temporaries each).  A whole track is cut into chunks (:mod:`.chunks`) and patches go in
batches so that one piece holds at most ``budget / FORWARD_SHARE``, and its features'
backward passes as many at once as that share holds again; a track in one piece gives the
whole budget to more features at once (:func:`features_per_pass`).  What stays
proportional to the track is the output: the masks, memory-mapped from a temporary file when
they pass ``budget / MASK_SHARE`` (:func:`mask_array`), their pages given back to the kernel
after each chunk is written and each group of features is read (:func:`release_pages`).  A
long track's STFT and audio are spilled the same way when they pass ``budget / TRACK_SHARE``
(:func:`spill_track`), and so are the other arrays as long as the track that a long job
makes (:func:`track_zeros`: sounds, the analysis' references): a :class:`SpilledArray`, whose
pages go back whenever it is indexed, so that a reader or writer that goes block by block
holds one block (:func:`read_block` copies one out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MemoryBudgetError
from ..graph import LayerInfo
from ..model import FrozenModel
from ..options import DeconvOptions
from ..representations import TrackInput
from .chunks import Chunk, plan_chunks
from .patches import model_input, patch_starts
from .program import Program

__all__ = ["MemoryPlan", "plan_memory", "features_per_pass", "mask_array", "release_pages", "spill",
           "spill_track", "read_block", "short_track", "one_piece", "zeros_held_as", "track_zeros",
           "SpilledArray", "probe_bytes",
           "size_text", "FORWARD_SHARE", "MASK_SHARE", "TRACK_SHARE", "BYTES_PER_ELEMENT",
           "ACTIVATION_COPIES", "PROBE_FRAMES"]

#: Share of the memory budget one piece's forward pass and one feature's backward pass may
#: hold together (the rest goes to backward passes of more features at once).  An eighth: a
#: quarter (1 GiB of the default 4 GiB) was no faster on a chunk (mtt-vgg 3CNN, 3 minutes:
#: 10.1 s, an eighth 9.8 s) and took the batch job's peak, with its sounds being made beside
#: the next layer's deconvolution, past 2.5 GB.
FORWARD_SHARE = 8
#: Masks over ``budget / MASK_SHARE`` go to a memory map (:func:`mask_array`), whose pages the
#: work gives back as it goes (:func:`release_pages`): they are the part that grows with the track.
#: 1/64, as what else is as long as the track (:data:`TRACK_SHARE`): at 1/16 the batch job held
#: two layers' masks of a 30-minute track in RAM (173 MB each for 4 features), 0.6 GB over its
#: 3-minute peak.
MASK_SHARE = 64
#: A track's STFT and audio over ``budget / TRACK_SHARE`` go to a memory map too
#: (:func:`spill_track`), and so does anything else as long as the track over it
#: (:func:`track_zeros`: a feature's sound, the analysis' references, the onset detector's
#: mel spectrogram): a 30-minute track at 44.1 kHz is 318 MB as float32, its STFT at 16 kHz
#: 231 MB.
TRACK_SHARE = 64
#: Bytes per element of the gradients one feature's backward pass holds: float32, and about
#: three temporaries on the way back.
BYTES_PER_ELEMENT = 4 * (1 + 3)
#: Copies of the layer's output one piece holds: the tensor, its numpy copy, the statistics'.
ACTIVATION_COPIES = 3
#: Frames of the probe that measures a whole track's memory per frame.
PROBE_FRAMES = 512


@dataclass(frozen=True)
class MemoryPlan:
    """How a track goes through one layer under the budget.

    Attributes
    ----------
    budget : int
        Bytes (:attr:`DeconvOptions.budget`).
    unit : {"frame", "patch"}
        What ``per_unit`` counts.
    per_unit : float
        Bytes one frame (whole track) or one patch holds in the forward pass plus one
        feature's backward pass.
    chunks : list of Chunk or None
        The whole track's chunks (None: one piece, or patches).
    patches_per_pass : int
        Patches per forward pass (patch mode; 0 for a whole track).
    n_patches : int
        The track's patches (0 for a whole track).
    piece_bytes : int
        What the largest piece holds (its forward pass and one feature's backward pass).
    output_bytes : int
        The masks (n_features x n_frames x n_bands float32): the part that grows with the track.
    """

    budget: int
    unit: str
    per_unit: float
    chunks: list[Chunk] | None
    patches_per_pass: int
    n_patches: int
    piece_bytes: int
    output_bytes: int

    @property
    def n_pieces(self) -> int:
        """Forward passes the track takes."""
        if self.unit == "patch":
            return -(-self.n_patches // self.patches_per_pass)
        return len(self.chunks) if self.chunks else 1

    def describe(self) -> str:
        """One line for the CLI: the estimate before the work starts."""
        what = (f"{self.n_pieces} batch{'es' if self.n_pieces != 1 else ''} of "
                f"{self.patches_per_pass} patches" if self.unit == "patch" else
                f"{self.n_pieces} chunk{'s' if self.n_pieces != 1 else ''}")
        mapped = (f" (memory-mapped: over 1/{MASK_SHARE} of the budget)"
                  if self.output_bytes > self.budget // MASK_SHARE else "")
        piece = (f"~{_gb(self.piece_bytes)} per piece ({what})" if self.per_unit else
                 "one piece, not measured (no longer than the probe)")
        return (f"memory: {piece} + {_gb(self.output_bytes)} of masks{mapped}; "
                f"budget {_gb(self.budget)}")


def mask_array(shape: tuple[int, ...], budget: int) -> np.ndarray:
    """Zeros (float32) for a result's masks: in RAM, or, when the masks pass
    ``budget / MASK_SHARE``, a ``.npy`` memory map in a temporary file (``TMPDIR``; its blocks
    reserved, the file unlinked at once: the mapping keeps it until the array goes), whose
    pages :func:`release_pages` gives back (not when ``TMPDIR`` is a tmpfs: its pages are RAM).

    Raises
    ------
    MemoryBudgetError
        The masks pass that share and the temporary folder has no room for them.
    """
    import shutil
    import tempfile

    nbytes = 4 * int(np.prod(shape))
    if nbytes <= budget // MASK_SHARE:
        return np.zeros(shape, np.float32)
    try:
        return _mapped_zeros(shape)
    except OSError as exc:
        folder = tempfile.gettempdir()
        raise MemoryBudgetError(
            f"the masks need ~{_gb(nbytes)}, more than 1/{MASK_SHARE} of the memory budget of "
            f"{_gb(budget)}, and "
            f"{folder} cannot hold them as a memory map ({exc.strerror or exc}; "
            f"{_gb(shutil.disk_usage(folder).free)} free); select fewer features or give a "
            f"larger --memory") from None


class SpilledArray(np.memmap):
    """A memory map that gives its pages back to the kernel (:func:`release_pages`) whenever it
    is indexed (before) or assigned to (after): a reader or writer that goes block by block
    (``store.write_audio``, the inverse STFT's blocks, the descriptors' correlations) holds one
    block in RAM, not the array.  The data stays in the file.  Whole-array operations
    (``a.max()``, ufuncs) read every page, as with any memory map, until the next index.
    """

    def __getitem__(self, index: Any) -> Any:
        release_pages(self)
        return super().__getitem__(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        release_pages(self)


def _mapped_zeros(shape: tuple[int, ...], dtype: np.dtype | type = np.float32, *,
                  releasing: bool = False) -> np.memmap:
    """Zeros (float32 unless told) in a ``.npy`` memory map in ``TMPDIR``, its blocks reserved (a disk that
    fills later cannot kill the process) and its file unlinked at once; ``releasing``: a
    :class:`SpilledArray`.

    Raises
    ------
    OSError
        The temporary folder cannot hold it.
    """
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="mirdeconv-", suffix=".npy")
    os.close(fd)
    try:
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.path.getsize(path))
        return arr.view(SpilledArray) if releasing else arr
    finally:
        os.unlink(path)


def spill(arr: np.ndarray) -> np.ndarray:
    """``arr`` in a memory map (a :class:`SpilledArray`), its pages given back: for what a long
    job keeps but reads only now and then, block by block.  In RAM when the temporary folder
    cannot hold it.

    Parameters
    ----------
    arr : np.ndarray
        Any shape and dtype.

    Returns
    -------
    np.ndarray
        Equal to ``arr`` (same dtype), a :class:`SpilledArray` when it could be spilled.
    """
    try:
        out = _mapped_zeros(arr.shape, arr.dtype, releasing=True)
    except OSError:
        return arr
    step = max(1, (16 << 20) // max(1, arr[:1].nbytes))          # 16 MB at a time
    for a in range(0, len(arr), step):
        out[a:a + step] = arr[a:a + step]
    return out


def track_zeros(shape: tuple[int, ...], dtype: np.dtype | type, budget: int) -> np.ndarray:
    """Zeros for an array as long as a track (a sound, a reference signal): a
    :class:`SpilledArray` when they pass ``budget / TRACK_SHARE`` and the temporary folder can
    hold them, else in RAM.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype
    budget : int
        Bytes (:attr:`DeconvOptions.budget`).

    Returns
    -------
    np.ndarray
        Zeros of ``shape`` and ``dtype``.
    """
    if int(np.prod(shape)) * np.dtype(dtype).itemsize > budget // TRACK_SHARE:
        try:
            return _mapped_zeros(shape, dtype, releasing=True)
        except OSError:
            pass
    return np.zeros(shape, dtype)


def spill_track(track: TrackInput, budget: int) -> TrackInput:
    """``track`` with its STFT and its audio each spilled (:func:`spill`) when they pass
    ``budget / TRACK_SHARE`` (a 30-minute track's STFT is 231 MB at 16 kHz and 512 points, its
    audio 115 MB): a long job reads them block by block (:func:`read_block`) when it turns
    masks into sound and describes them.

    Parameters
    ----------
    track : TrackInput
    budget : int
        Bytes (:attr:`DeconvOptions.budget`).

    Returns
    -------
    TrackInput
        ``track`` itself when its STFT is small.
    """
    import dataclasses

    big = {k: spill(v) for k, v in (("stft", track.stft), ("audio", track.audio))
           if v.nbytes > budget // TRACK_SHARE and _mapping(v) is None}
    return dataclasses.replace(track, **big) if big else track


def read_block(arr: np.ndarray, index: tuple | slice) -> np.ndarray:
    """``arr[index]`` copied into RAM, the pages of a memory-mapped ``arr`` given back
    (:func:`release_pages`): what a block-by-block reader of a spilled array holds is the
    block.

    Parameters
    ----------
    arr : np.ndarray
        Any array (one in RAM is only indexed: a view, no copy).
    index : tuple or slice
        Numpy basic indexing.

    Returns
    -------
    np.ndarray
        ``arr[index]``.
    """
    if _mapping(arr) is None:
        return arr[index]
    out = np.array(arr[index])
    release_pages(arr)
    return out


def zeros_held_as(like: np.ndarray, dtype: np.dtype | type, shape: tuple[int, ...] | None = None
                  ) -> np.ndarray:
    """Zeros of ``like``'s shape (or ``shape``), held as ``like`` is: in a memory map
    (:func:`_mapped_zeros`; a :class:`SpilledArray` if ``like`` is one) when it is one and the
    temporary folder can hold them, else in RAM."""
    shape = like.shape if shape is None else shape
    if _mapping(like) is not None:
        try:
            return _mapped_zeros(shape, dtype, releasing=isinstance(like, SpilledArray))
        except OSError:
            pass
    return np.zeros(shape, dtype)


def _mapping(arr: np.ndarray) -> Any:
    """The :class:`mmap.mmap` under ``arr`` (or a view of it), or None."""
    import mmap

    base = arr
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release_pages(arr: np.ndarray) -> None:
    """Give the pages of a memory-mapped array (or a view of one) back to the kernel: what was
    written stays in the file (a shared mapping), and is read back from the page cache or the
    disk when it is next touched.  Arrays in RAM are left alone.

    Parameters
    ----------
    arr : np.ndarray
        Any array; only one whose memory is a :class:`mmap.mmap` is released (all of it).
    """
    import mmap

    base = _mapping(arr)
    if base is not None:
        base.madvise(mmap.MADV_DONTNEED)


def _gb(n: float) -> str:
    """A size for people: ``1.50 GiB``, ``300 MiB``, ``315 KiB``, ``12 B``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale * (0.25 if unit == "GiB" else 1):
            return f"{n / scale:.2f} {unit}" if unit == "GiB" else f"{n / scale:.0f} {unit}"
    return f"{n:.0f} B"


def probe_bytes(prog: Program, x: np.ndarray) -> tuple[int, int]:
    """What a forward pass over ``x`` holds, and what one seed's backward pass over it holds
    besides, in bytes (one forward pass of ``x`` measures both).

    Parameters
    ----------
    prog : Program
    x : np.ndarray, float32, shape (n_items, *input_shape[1:])

    Returns
    -------
    forward : int
        The layer's output (:data:`ACTIVATION_COPIES` copies), the tensors saved for the
        backward pass and every tensor made on the way.
    backward : int
        The gradients of one seed (one feature, one tag) on the way back
        (:data:`BYTES_PER_ELEMENT` per element).
    """
    act, saved, elems, made = prog.forward(x)
    held = sum(int(np.prod(t.shape)) * t.dtype.size for t in prog.tf.nest.flatten(saved)
               if hasattr(t, "dtype"))
    n_items = max(1, int(np.shape(x)[0]))
    act_bytes = int(np.prod(act.shape)) * 4
    return (ACTIVATION_COPIES * act_bytes + held + 4 * made * n_items,
            BYTES_PER_ELEMENT * elems * n_items)


def size_text(n: float) -> str:
    """A size in bytes for people: ``1.50 GiB``, ``300 MiB``, ``315 KiB``, ``12 B``."""
    return _gb(n)


def _probe_bytes(prog: Program, x: np.ndarray) -> int:
    """What a forward pass over ``x`` and one feature's backward pass hold, in bytes."""
    return sum(probe_bytes(prog, x))


def plan_memory(prog: Program, model: FrozenModel, info: LayerInfo, track: TrackInput,
                opts: DeconvOptions, whole: bool, n_features: int, *, probe_short: bool = True
                ) -> MemoryPlan:
    """The plan for one layer and track (one probe forward pass).

    Parameters
    ----------
    whole : bool
        The track goes through the layer whole (else in patches).
    n_features : int
        Features deconvolved (for the size of the masks).
    probe_short : bool
        Measure even a track no longer than the probe (or one patch); False: such a track
        goes in one piece unmeasured (``per_unit`` and ``piece_bytes`` 0).

    Raises
    ------
    MemoryBudgetError
        Even the smallest piece (a chunk of two receptive fields, one patch, or every patch
        for ``target="max"`` on patches, whose strongest unit belongs to the whole track) does
        not fit in the budget.
    """
    budget, n = opts.budget, track.n_frames
    out_bytes = 4 * n_features * n * model.representation.n_bands
    stride, rf = info.stride[0] or 1, info.receptive_field[0]
    length = model.input_length or n
    if not probe_short and short_track(model, track, whole):
        return one_piece(MemoryPlan(budget, "frame" if whole else "patch", 0.0, None, 0, 0, 0,
                                    out_bytes))
    if whole:
        probe = min(n, max(PROBE_FRAMES, 2 * rf))
        x, _ = model_input(model, track.frames[:probe], True, stride)
        per = _probe_bytes(prog, x) / probe
        chunks = None
        if info.time_agnostic and per * n > budget / FORWARD_SHARE:
            core = int(budget / FORWARD_SHARE / per) - 2 * rf
            chunks = plan_chunks(n, max(core, 4 * stride, rf), rf, stride)
            if len(chunks) == 1:
                chunks = None
        frames = max(c.stop - c.start for c in chunks) if chunks else n
        plan = MemoryPlan(budget, "frame", per, chunks, 0, 0, int(per * frames), out_bytes)
    else:
        n_patches = len(patch_starts(n, length, model.patch_hop, stride))
        x, _ = model_input(model, track.frames[:length], False, stride)
        per = float(_probe_bytes(prog, x[:1]))
        batch = n_patches if opts.target == "max" else \
            int(min(n_patches, max(1, budget / FORWARD_SHARE // per)))
        plan = MemoryPlan(budget, "patch", per, None, batch, n_patches, int(per * batch),
                          out_bytes)
    if plan.piece_bytes > budget:
        raise MemoryBudgetError(_refusal(plan, opts, info))
    return plan


def short_track(model: FrozenModel, track: TrackInput, whole: bool) -> bool:
    """Whether ``track`` is no longer than the probe (a whole track) or one patch."""
    n = track.n_frames
    return n <= PROBE_FRAMES if whole else n <= (model.input_length or n)


def one_piece(plan: MemoryPlan) -> MemoryPlan:
    """``plan``'s track in one piece, unmeasured: how a track no longer than the probe goes
    (:func:`plan_memory` with ``probe_short=False``)."""
    patch = int(plan.unit == "patch")
    return MemoryPlan(plan.budget, plan.unit, 0.0, None, patch, patch, 0, plan.output_bytes)


def _refusal(plan: MemoryPlan, opts: DeconvOptions, info: LayerInfo) -> str:
    if opts.target == "max" and plan.unit == "patch":
        why = (f"target 'max' takes every patch in one piece (its strongest unit is the "
               f"track's): ~{_gb(plan.piece_bytes)}")
        fix = "use target 'map', a shorter excerpt, or a larger --memory"
    else:
        what = "one patch" if plan.unit == "patch" else \
            f"the smallest chunk of layer {info.name} (two receptive fields)"
        why = f"{what} needs ~{_gb(plan.piece_bytes)}"
        fix = "give a larger --memory (or MIRDECONV_MEMORY)"
    return f"{why}, more than the memory budget of {_gb(plan.budget)}; {fix}"


def features_per_pass(opts: DeconvOptions, elems: int, n: int, *, piece: bool = False) -> int:
    """Features per backward pass: per feature the backward pass holds the gradients on the
    way and about two temporaries each; equal groups keep to one traced backward function.

    ``piece``: ``x`` is one of many pieces (a chunk, a batch of patches), sized to
    ``budget / FORWARD_SHARE``; the gradients of all its features keep to that share too
    (more features at once buy nothing there, and oneDNN's pool keeps its peak for the run).
    A track in one piece uses the whole budget."""
    width = 2 if opts.precision == "bfloat16" else 4
    budget = opts.budget // FORWARD_SHARE if piece else opts.budget
    chunk = int(max(1, min(n, budget // max(width * 3 * elems, 1))))
    n_chunks = -(-n // chunk)
    return -(-n // n_chunks)
