"""How alike two explanations are: Spearman's rank correlation and SSIM, as Adebayo et al.
("Sanity checks for saliency maps", NeurIPS 2018, §4) compare a trained model's map with a
randomised model's.

* :func:`rank_correlation`: Spearman's rho of the maps' values (``absolute``: of their
  magnitudes, the ranking a listener would get from the positive-and-negative map's energy);
* :func:`ssim`: the structural similarity (Wang et al., 2004; scikit-image's
  ``structural_similarity``, 7 x 7 windows) of the magnitudes, each scaled to [0, 1] by its
  maximum.

A map that is constant (all zero: nothing to rank) against one that is not shares no
ranking with it: its rank correlation is 0 (two constant maps: NaN); its SSIM is NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rank_correlation", "ssim"]


def _constant(a: np.ndarray) -> bool:
    return a.size == 0 or bool(np.ptp(a) == 0)


def rank_correlation(a: np.ndarray, b: np.ndarray, *, absolute: bool = True) -> float:
    """Spearman's rank correlation of two maps of one shape (0 when one of them is constant,
    NaN when both are).

    Parameters
    ----------
    a, b : np.ndarray, shape (n_frames, n_bands)
    absolute : bool
        Rank the magnitudes.
    """
    from scipy.stats import spearmanr

    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    if _constant(a) or _constant(b):
        return float("nan") if _constant(a) and _constant(b) else 0.0
    return float(spearmanr(a, b).statistic)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of the magnitudes of two maps of one shape, each scaled to [0, 1] (NaN when one is
    constant; a map with an axis shorter than 7 is compared with a smaller odd window, down
    to 3, and axes of length 1 are dropped).

    Parameters
    ----------
    a, b : np.ndarray, shape (n_frames, n_bands)
    """
    from skimage.metrics import structural_similarity

    a, b = np.abs(np.squeeze(np.asarray(a, np.float64))), np.abs(np.squeeze(np.asarray(b, np.float64)))
    if _constant(a) or _constant(b) or min(a.shape, default=0) < 3:
        return float("nan")
    a, b = a / a.max(), b / b.max()
    win = min(7, min(a.shape) - (1 - min(a.shape) % 2))
    return float(structural_similarity(a, b, data_range=1.0, win_size=win))
