"""Seeds of the backward pass: the selected features' own activation maps."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["select", "seed"]


def select(tf: Any, act: Any, feats: Any, axis: int, target_max: Any) -> Any:
    """The selected features' maps, (F, N, ...) without the features axis; with ``target_max``
    only each map's strongest unit (first one on ties) is kept."""
    rank = act.shape.rank
    sel = tf.gather(act, feats, axis=axis)                               # feats on `axis`
    sel = tf.transpose(sel, [axis] + [i for i in range(rank) if i != axis])

    def strongest(s: Any) -> Any:
        flat = tf.reshape(s, [tf.shape(s)[0], -1])
        idx = tf.argmax(flat, axis=1, output_type=tf.int32)
        return tf.reshape(tf.one_hot(idx, tf.shape(flat)[1], dtype=s.dtype) * flat, tf.shape(s))

    return tf.cond(target_max, lambda: strongest(sel), lambda: sel)


def seed(tf: Any, act: Any, feats: Any, axis: int, target_max: Any) -> Any:
    """Seeds for the backward pass: (F, N, ...) with only feature f's map (or its max unit)."""
    rank = act.shape.rank
    sel = select(tf, act, feats, axis, target_max)                       # (F, N, ..., no C)
    C = tf.shape(act)[axis]
    onehot = tf.one_hot(feats, C, dtype=act.dtype)                       # (F, C)
    shape = tf.concat([[tf.shape(feats)[0]], tf.ones([rank - 1], tf.int32), [C]], 0)
    out = sel[..., None] * tf.reshape(onehot, shape)                     # (F, N, ..., C)
    perm = [i for i in range(rank) if i != axis] + [axis]               # where C goes back
    return tf.transpose(out, [0] + [1 + int(p) for p in np.argsort(perm)])
