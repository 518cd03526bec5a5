"""Masks on an STFT grid back into sound, block by block, in memory bounded by the block.

``librosa.istft(M * S, length=n)`` of a whole track holds the mask, the product and the
inverse's frames for every frame at once.  Here the track's frames go in blocks of
:data:`BLOCK_FRAMES`, each extended by the window's overlap (``ceil(n_fft / hop) + 1``
frames) on both sides and inverted with ``center=False``: every output sample of a block's
core gets all the frames that overlap it, and the same window sum, so the stitched signal is
the one-call result (to float rounding).  The STFT at the track's own rate is computed the
same way, each block from its own stretch of the signal (padded at the track's ends as
``librosa.stft(center=True)`` pads).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["BLOCK_FRAMES", "stft_frames", "invert_blocks"]

#: STFT frames turned into sound at once (plus the window's overlap on each side).  A block
#: of 2048 frames at 44.1 kHz (n_fft 2048) holds ~0.1 GB of float64 frames and spectra on the
#: way (librosa computes in float64); 8192 held four times that, on top of the engine's peak.
BLOCK_FRAMES = 2048


def stft_frames(y: np.ndarray, f0: int, f1: int, grid: dict, window: np.ndarray,
                center: bool = True, pad_mode: str = "constant") -> np.ndarray:
    """Frames ``f0 .. f1 - 1`` of ``librosa.stft(y, center=center, **grid)``.

    Returns
    -------
    np.ndarray, complex64, shape (1 + n_fft // 2, f1 - f0)
    """
    import librosa

    n_fft, hop = grid["n_fft"], grid["hop_length"]
    off = n_fft // 2 if center else 0
    start, stop = f0 * hop - off, (f1 - 1) * hop - off + n_fft
    lo, hi = max(0, start), min(len(y), stop)
    seg = np.asarray(y[lo:hi], np.float64)
    if lo - start or stop - hi:
        seg = np.pad(seg, (lo - start, stop - hi), mode=pad_mode)
    return librosa.stft(seg, window=window, center=False, n_fft=n_fft, hop_length=hop,
                        win_length=grid.get("win_length")).astype(np.complex64)


def invert_blocks(n_frames: int, n_samples: int, grid: dict, window: np.ndarray, center: bool,
                  mask_of: Callable[[int, int], np.ndarray],
                  stft_of: Callable[[int, int], np.ndarray] | None,
                  thumb_step: tuple[int, int] | None = (1, 1), *, out: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.istft(mask * stft, center=center, length=n_samples)``, block by block.

    Parameters
    ----------
    n_frames, n_samples : int
        Frames of the STFT; samples of the output.
    grid : dict
        ``n_fft``, ``hop_length``, ``win_length``.
    mask_of, stft_of : callable (f0, f1) -> array
        The masks ``(F, bins, f1 - f0)`` and the STFT ``(bins, f1 - f0)`` of frames f0 .. f1-1
        (``stft_of`` None: ``mask_of`` gives the products themselves).
    thumb_step : (int, int) or None
        Every ``thumb_step[0]``-th bin and ``thumb_step[1]``-th frame of ``|mask * stft|``
        is kept for pictures (None: nothing is kept).
    out : np.ndarray, float32, shape (F, n_samples), optional
        Where the audio goes (a long track's sounds are ~100 MB each: no second copy).

    Returns
    -------
    audio : np.ndarray, float32, shape (F, n_samples)
    coarse : np.ndarray, float32, shape (F, bins / step, frames / step)
        The kept magnitudes.
    """
    import librosa

    n_fft, hop = grid["n_fft"], grid["hop_length"]
    sb, st = thumb_step or (1, 1)
    margin = -(-n_fft // hop) + 1
    off = n_fft // 2 if center else 0
    coarse = []
    for a in range(0, n_frames, BLOCK_FRAMES):
        b = min(n_frames, a + BLOCK_FRAMES)
        f0, f1 = max(0, a - margin), min(n_frames, b + margin)
        M = mask_of(f0, f1)
        Y = M if stft_of is None else M * stft_of(f0, f1)[None]
        y = librosa.istft(Y, window=window, center=False, n_fft=n_fft,
                          hop_length=hop, win_length=grid.get("win_length"))
        if out is None:
            out = np.zeros((len(M), n_samples), np.float32)
        j0 = a * hop if a else 0                    # this block's samples: j0 .. j1 - 1
        j1 = n_samples if b == n_frames else min(n_samples, b * hop)
        part = y[:, j0 + off - f0 * hop:][:, :max(0, j1 - j0)]
        out[:, j0:j0 + part.shape[1]] = part
        if thumb_step is not None:
            cols = np.arange(-(-a // st) * st, b, st) - f0
            coarse.append(np.abs(Y[:, ::sb][:, :, cols]))
    if out is None:
        return np.zeros((0, n_samples), np.float32), np.zeros((0, 0, 0), np.float32)
    if not coarse:
        return out, np.zeros((len(out), 0, 0), np.float32)
    return out, np.concatenate(coarse, axis=2).astype(np.float32, copy=False)
