"""The fast paths: chains of channel-by-channel steps that the engine runs in a cheaper form.

Both paths walk the same kind of chain (:func:`channelwise_chain`): steps that each work
channel by channel (pass-throughs, non-linearities, batch norm, biases, per-channel scales,
and for the compact path max-pools), ending in a stride-1 convolution.

* **Compact** (:func:`compact_chain`): from the seeded layer down to the first convolution.
  Below the seed the backward signal stays zero in every channel but the feature's own, so
  the engine carries it as ONE channel per feature ``(F, N, H, W)`` and the first transposed
  convolution needs only the feature's own kernel slice (a depthwise convolution).
* **Fused first layer** (:func:`fuse_first_layer`): a max-pool's unpooling, the channelwise
  steps below it and a transposed convolution into an input with few channels (a network's
  first layer).  Unpooled, that signal is as large as the first conv's output times the
  number of features, and the transposed conv into a 1-channel input is memory-bound.  For
  one track the map from the POOLED signal to the input is linear and the same for every
  feature: each pooled unit (cell, channel) sends its value, through its switch, to the conv
  kernel's taps.  So the forward pass folds switches x derivatives x kernel into per-cell
  weights ``B`` (cells, C, taps), and the backward pass is one batched matmul over cells at
  pooled size, a few shifted sums at pooled size, and one reshuffle that lays the
  sub-positions out on the input grid.  Each cell's weights are the kernel placed at its
  switch (a gather: the switches are one-hot), so a pool over a whole axis fuses too when
  its taps are a fraction of the dense transposed convolution's work (musicnn's front end:
  a 1 x 59 pool over a 7 x 38 convolution's bands, 826 taps per cell and channel instead
  of 15,694 multiply-adds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .rules.conv import conv_geometry, is_unit_stride, pads
from .sparse import sparse_map, sparse_rule
from .step import CellsMajor, Context, Step, split

__all__ = ["channelwise_chain", "compact_chain", "fuse_first_layer", "FirstLayer", "FirstLayerWay",
           "FIRST_LAYER_WAYS", "MAX_FUSED_POOL", "FUSED_GAIN", "SPARSE_COST"]

#: Pools up to this many cells always fuse.
MAX_FUSED_POOL = 16
#: A larger pool fuses when its per-cell weights (taps) are at most this fraction of the
#: dense transposed convolution's multiply-adds per pooled cell (a pool over all bands of a
#: tall kernel; not one over a one-band kernel, whose taps would be as many).
FUSED_GAIN = 4
#: Cost of one multiply-add of the sparse way against one of the dense transposed
#: convolution into few channels (both run at memory speed): a larger pool takes the sparse
#: way when its kernel's taps times this are fewer than the other ways' work.
SPARSE_COST = 16


def channelwise_chain(ctx: Context, steps: Sequence[Step], start: str, *, pools: bool,
                      shared_start: bool) -> tuple[list[Step], Step] | None:
    """The channel-by-channel steps (``Step.channelwise``, set by their rules) from tensor
    ``start`` down to a convolution.

    Parameters
    ----------
    steps : sequence of Step
        The program's steps.
    start : str
        The tensor where the walk begins (the first step is the one that produces it).
    pools : bool
        Non-overlapping max-pools may lie on the way (compact path).
    shared_start : bool
        ``start`` itself may have other users (it is the seeded layer).

    Returns
    -------
    (chain, conv) or None
        The steps above the convolution (from ``start`` down) and the convolution step,
        or None when the walk meets anything else.
    """
    by_out = {st.output: st for st in steps}
    users: dict[str, int] = {}
    for st in steps:
        for t in st.inputs:
            users[t] = users.get(t, 0) + 1
    chain: list[Step] = []
    t = start
    while t in by_out:
        st = by_out[t]
        if st.var_inputs != [0] or (users.get(t, 0) != 1 and not (shared_start and not chain)):
            return None
        if st.op == "Conv2D":
            return chain, st
        if not (st.channelwise or (pools and st.compact_pool)):
            return None
        chain.append(st)
        t = st.inputs[0]
    return None


def compact_chain(ctx: Context, steps: Sequence[Step], layer: str, feature_axis: int
                  ) -> list[Step] | None:
    """The steps from the seeded layer down to (and including) the first convolution, when
    every one works channel by channel and the convolution has a compact rule (its rule
    sets one for the strides and shapes it can take)."""
    if feature_axis != 3:
        return None
    found = channelwise_chain(ctx, steps, layer, pools=True, shared_start=True)
    if found is None:
        return None
    chain, conv = found
    return chain + [conv] if conv.compact_rule else None


def _deltas(kp: int, kc: int) -> int:
    """Pooling windows a kernel of ``kc`` taps placed in a window of ``kp`` cells reaches."""
    return -(-(kp + kc - 1) // kp)


def _placed_kernel(w: np.ndarray, kp_h: int, kp_w: int) -> np.ndarray:
    """The kernel placed at every switch offset of a pooling window, float32
    ``(kp_h * kp_w, C, nd_h * nd_w * kp_h * kp_w * cin)``: offset ``(y, x)`` puts tap
    ``(a, b)`` at input position ``(y + a, x + b)`` of the window's stretch, laid out as
    ``(delta_h, delta_w, sub_h, sub_w, cin)`` with ``y + a = kp_h * delta_h + sub_h`` (so
    that the backward pass sums delta-shifted groups at pooled size).

    Parameters
    ----------
    w : np.ndarray, shape (kc_h, kc_w, cin, C)
        The convolution's kernel.
    """
    kc_h, kc_w, cin, C = w.shape
    nd_h, nd_w = _deltas(kp_h, kc_h), _deltas(kp_w, kc_w)
    out = np.zeros((kp_h, kp_w, C, nd_h, nd_w, kp_h, kp_w, cin), np.float32)
    wt = np.transpose(np.asarray(w, np.float32), (0, 1, 3, 2))          # (kc_h, kc_w, C, cin)
    for y in range(kp_h):
        for a in range(kc_h):
            dh, sh = divmod(y + a, kp_h)
            for x in range(kp_w):
                for b in range(kc_w):
                    dw, sw = divmod(x + b, kp_w)
                    out[y, x, :, dh, dw, sh, sw, :] = wt[a, b]
    return out.reshape(kp_h * kp_w, C, -1)


def fuse_first_layer(ctx: Context, steps: Sequence[Step], pool: Step) -> list[Step]:
    """Fuse ``pool`` with the channelwise steps and the first convolution below it, the
    cheapest of the ways of :data:`FIRST_LAYER_WAYS` that pays (else the dense path stays).

    On success ``pool`` gets the fused ``save``/``rule`` (its gradient goes straight to the
    convolution's input, ``pool.fused_target``) and the steps it replaced are returned;
    otherwise nothing changes and ``[]`` is returned.
    """
    if pool.pool_geometry is None:
        return []
    kp_h, kp_w, _ = pool.pool_geometry
    found = channelwise_chain(ctx, steps, pool.inputs[0], pools=False, shared_start=False)
    if found is None:
        return []
    chain, conv = found
    strides, dil, padding, _ = conv_geometry(ctx, conv)
    w = ctx.graph.const_value(conv.inputs[1])
    if (w is None or padding not in ("SAME", "VALID") or not is_unit_stride(strides, dil)
            or w.shape[2] > 4 or conv.grouped):
        return []
    shape = FirstLayer(kp_h, kp_w, *(int(d) for d in w.shape[:3]))
    costs = {name: way.cost(shape) for name, way in FIRST_LAYER_WAYS.items()}
    costs = {name: c for name, c in costs.items() if c is not None}
    if not costs:
        return []
    pool.fused_way = min(costs, key=costs.get)
    way = FIRST_LAYER_WAYS[pool.fused_way]
    ops = _channel_ops(ctx, chain)
    kinds = [kind for kind, _ in ops]
    pool.save = [way.save(ctx, pool, chain, conv, w, padding)] + [f for _, f in ops if f is not None]
    pool.rule = way.rule(ctx.tf, kinds, shape)
    pool.fused_target = conv.inputs[0]
    pool.fused_taps = way.held(shape)
    return chain + [conv]


@dataclass(frozen=True)
class FirstLayer:
    """A pool of ``kp_h x kp_w`` cells over a stride-1 convolution with a ``kc_h x kc_w``
    kernel from ``cin`` channels."""

    kp_h: int
    kp_w: int
    kc_h: int
    kc_w: int
    cin: int

    @property
    def deltas(self) -> tuple[int, int]:
        """Pooling windows a kernel placed in a window reaches, per axis."""
        return _deltas(self.kp_h, self.kc_h), _deltas(self.kp_w, self.kc_w)

    @property
    def taps(self) -> int:
        """Per pooled cell and channel, the values of the kernel placed at any switch."""
        nd_h, nd_w = self.deltas
        return nd_h * nd_w * self.kp_h * self.kp_w * self.cin

    @property
    def dense(self) -> int:
        """Per pooled cell and channel, the dense transposed convolution's multiply-adds."""
        return self.kp_h * self.kp_w * self.kc_h * self.kc_w * self.cin


@dataclass(frozen=True)
class FirstLayerWay:
    """One way of running a fused first layer.

    ``cost(shape)``: its work per pooled cell and channel, in dense multiply-adds (None:
    it does not pay here); ``save(ctx, pool, chain, conv, w, padding)``: what the forward
    pass records; ``rule(tf, kinds, shape)``: the backward rule; ``held(shape)``: values per
    pooled cell and channel its backward pass holds per feature (for the memory plan).
    """

    cost: Callable[[FirstLayer], float | None]
    save: Callable[..., Callable[[dict], Any]]
    rule: Callable[[Any, list[str], FirstLayer], Callable]
    held: Callable[[FirstLayer], int]


def _cells_cost(s: FirstLayer) -> float | None:
    if s.kp_h * s.kp_w <= MAX_FUSED_POOL:
        return 0.0                         # small pools: always, as the cheapest
    return FUSED_GAIN * s.taps if FUSED_GAIN * s.taps <= s.dense else None


def _sparse_cost(s: FirstLayer) -> float | None:
    if s.kp_h * s.kp_w <= MAX_FUSED_POOL:
        return None
    cost = SPARSE_COST * s.kc_h * s.kc_w * s.cin
    return cost if cost <= s.dense else None


def _cells_save(ctx: Context, pool: Step, chain: list[Step], conv: Step, w: np.ndarray,
                padding: str) -> Callable[[dict], Any]:
    return _cell_weights(ctx, pool, chain, conv, w, padding)


def _sparse_save(ctx: Context, pool: Step, chain: list[Step], conv: Step, w: np.ndarray,
                 padding: str) -> Callable[[dict], Any]:
    derivs = [st.derivative for st in chain if st.derivative] if ctx.method.derivative else []
    return sparse_map(ctx, pool, conv, w, padding, derivs)


#: The ways of running a fused first layer; :func:`fuse_first_layer` takes the cheapest.
FIRST_LAYER_WAYS: dict[str, FirstLayerWay] = {
    # per-cell weights, one batched matmul at pooled resolution (small pools; a pool over all
    # bands of a wide kernel, musicnn's timbral branches)
    "cells": FirstLayerWay(
        _cells_cost, _cells_save,
        lambda tf, kinds, s: _fused_rule(tf, kinds, (s.kp_h, s.kp_w), s.deltas, s.cin),
        lambda s: s.taps),
    # a sparse matrix, one CSR product (a pool over all bands of a tall, narrow kernel,
    # musicnn's temporal branches)
    "sparse": FirstLayerWay(
        _sparse_cost, _sparse_save, lambda tf, kinds, s: sparse_rule(tf, kinds, s.cin),
        lambda s: 0),
}


def _channel_ops(ctx: Context, chain: list[Step]) -> list[tuple[str, Callable | None]]:
    """The chain's per-channel operations on the pooled signal, in backward order:
    ``("scale" | "divide", env -> constant)`` or ``("relu", None)``."""
    ops: list[tuple[str, Callable | None]] = []
    for st in chain:
        kind, fn = st.channel_op or (None, None)
        if kind == "nonlinear":
            if ctx.method.rectify:
                ops.append(("relu", None))
        elif kind is not None:
            ops.append((kind, fn))
    return ops


def _cover(tf: Any, x: Any, ho: Any, wo: Any, pt: Any, pl: Any) -> Any:
    """The pool's covered region [-pt, ho - pt) x [-pl, wo - pl) of a full-res tensor."""
    xs = tf.shape(x)
    x = tf.pad(x, [[0, 0], [pt, tf.maximum(ho - pt - xs[1], 0)],
                   [pl, tf.maximum(wo - pl - xs[2], 0)], [0, 0]])
    return x[:, :ho, :wo]


def _cell_weights(ctx: Context, pool: Step, chain: list[Step], conv: Step, w: np.ndarray,
                  padding: str) -> Callable[[dict], Any]:
    """``env -> (B (cells, C, taps), geometry)``: per cell and channel, the kernel placed at
    the switch (:func:`_placed_kernel`, gathered: TensorFlow's switches are one-hot, the
    first maximum on ties) times the derivatives there."""
    tf = ctx.tf
    kp_h, kp_w, _ = pool.pool_geometry
    kc_h, kc_w = (int(d) for d in w.shape[:2])
    placed = _placed_kernel(w, kp_h, kp_w)
    derivs = [st.derivative for st in chain if st.derivative] if ctx.method.derivative else []
    switches = pool.save[0]
    conv_in, conv_out, w_t = conv.inputs[0], conv.output, conv.inputs[1]
    n_off, C = placed.shape[0], placed.shape[1]
    placed = placed.reshape(n_off * C, -1)                    # (offset * C + c, taps)

    def weights(env: dict) -> tuple:
        mask6, geo = switches(env)
        ys = tf.shape(env[conv_out])
        n_ho, n_wo = tf.shape(mask6)[0] // ys[0], tf.shape(mask6)[2]
        ho, wo = n_ho * kp_h, n_wo * kp_w
        m = tf.reshape(mask6, tf.stack([ys[0], ho, wo, C]))
        onehot = m
        for d in derivs:  # fold f'(x) of every non-linearity (methods with the derivative)
            m = m * _cover(tf, d(env), ho, wo, geo[2], geo[3])

        def cells(t: Any) -> Any:                             # -> (cells, C, offsets)
            t = tf.reshape(t, tf.stack([ys[0] * n_ho, kp_h, n_wo, kp_w, C]))
            return tf.reshape(tf.transpose(t, [0, 2, 4, 1, 3]), tf.stack([-1, C, n_off]))

        switch = tf.argmax(cells(onehot), axis=2, output_type=tf.int32)       # (cells, C)
        kernel = tf.cast(tf.constant(placed), env[w_t].dtype)
        B = tf.gather(kernel, switch * C + tf.range(C)[None])
        if derivs:                  # the derivatives at the switch (without them: one)
            B = B * tf.reduce_sum(cells(m), axis=2)[:, :, None]
        xs = tf.shape(env[conv_in])
        pc_t, pc_l = pads(tf, padding, [], xs[1], xs[2], ys[1], ys[2], kc_h, kc_w)
        return B, tf.stack([xs[1], xs[2], geo[2] + pc_t, geo[3] + pc_l])

    return weights


def _fused_rule(tf: Any, kinds: list[str], kp: tuple[int, int], nd: tuple[int, int],
                cin: int) -> Callable:
    kp_h, kp_w = kp
    nd_h, nd_w = nd

    def rule(g: Any, sv: list, F: Any) -> list:
        (B, geo), scales = sv[0], list(sv[1:])
        if isinstance(g, CellsMajor):         # (N, Ho, Wo, F, C): already cells-major
            t = g.t
            n, ho, wo, nf = (tf.shape(t)[i] for i in range(4))
        else:                                   # (F, N, Ho, Wo, C)
            nf, n, ho, wo = (tf.shape(g)[i] for i in range(4))
            t = tf.transpose(g, [1, 2, 3, 0, 4])
        k = 0
        for kind in kinds:
            if kind == "relu":
                t = tf.nn.relu(t)
            else:
                c = tf.reshape(scales[k], [-1])
                t = t * c if kind == "scale" else t / c
                k += 1
        Y = tf.matmul(tf.reshape(t, tf.stack([n * ho * wo, nf, -1])), B)  # cells, F, taps
        Y = tf.reshape(Y, tf.stack([n, ho, wo, nf, nd_h, nd_w, kp_h * kp_w * cin]))
        # taps o = kp * delta + sub: sum the delta-shifted groups at pooled resolution ...
        acc = None
        for dy in range(nd_h):
            for dxx in range(nd_w):
                part = tf.pad(Y[:, :, :, :, dy, dxx], [[0, 0], [dy, nd_h - 1 - dy],
                                                        [dxx, nd_w - 1 - dxx], [0, 0], [0, 0]])
                acc = part if acc is None else acc + part
        # ... then lay the sub-positions out on the input grid: (N, Hc, Wc, F, ...) -> (F, N, H, W)
        hc, wc = ho + nd_h - 1, wo + nd_w - 1
        acc = tf.reshape(acc, tf.stack([n, hc, wc, nf, kp_h, kp_w, cin]))
        acc = tf.transpose(acc, [3, 0, 1, 4, 2, 5, 6])
        dx = tf.reshape(acc, tf.stack([nf * n, hc * kp_h, wc * kp_w, cin]))
        H, W, pt, pl = geo[0], geo[1], geo[2], geo[3]
        dx = dx[:, pt:pt + H, pl:pl + W]
        dx = tf.pad(dx, [[0, 0], [0, H - tf.shape(dx)[1]], [0, W - tf.shape(dx)[2]], [0, 0]])
        return [split(tf, dx, F)]

    return rule
