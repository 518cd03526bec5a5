"""The fast paths: chains of channel-by-channel steps that the engine runs in a cheaper form.

Both paths walk the same kind of chain (:func:`channelwise_chain`): steps that each work
channel by channel (pass-throughs, non-linearities, batch norm, biases, per-channel scales,
and for the compact path max-pools), ending in a convolution.

* **Compact** (:func:`compact_chain`): from the seeded layer down to the first convolution.
  Below the seed the backward signal stays zero in every channel but the feature's own, so
  the engine carries it as ONE channel per feature ``(F, N, H, W)`` and the first transposed
  convolution needs only the feature's own kernel slice (the convolution's compact rule: a
  depthwise convolution; along time only for a kernel as wide as its input; blocks of a
  banded Toeplitz matrix for a waveform net's strided first layer).
* **Fused first layer** (:func:`fuse_first_layer`): a max-pool's unpooling, the channelwise
  steps below it and a stride-1 transposed convolution into an input with few channels (a
  network's first layer).  Unpooled, that signal is as large as the first conv's output
  times the number of features, and the transposed conv into a 1-channel input is
  memory-bound.  For one track the map from the POOLED signal to the input is linear and
  the same for every feature: each pooled unit (cell, channel) sends its value, through its
  switch, to the conv kernel's taps.  The forward pass writes that map down once, in the
  cheapest way of :data:`FIRST_LAYER_WAYS`: per-cell weights and one batched matmul
  (:mod:`.cells`: small pools, and a pool over all bands of a wide kernel, musicnn's
  timbral branches), or a sparse matrix and one CSR product (:mod:`.sparse`: a pool over all
  bands of a tall, narrow kernel, musicnn's temporal branches).  Pools whose windows overlap
  or leave gaps fuse too (:mod:`.switches`: mtt-vgg's first pool).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..graph.operations import Kind
from .cells import cell_weights, cells_rule
from .rules.conv import conv_geometry, is_unit_stride
from .sparse import sparse_map, sparse_rule
from .step import Context, Step
from .switches import FirstLayer

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
        if st.operation.kind is Kind.CONVOLUTION:
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


def fuse_first_layer(ctx: Context, steps: Sequence[Step], pool: Step) -> list[Step]:
    """Fuse ``pool`` with the channelwise steps and the first convolution below it, the
    cheapest of the ways of :data:`FIRST_LAYER_WAYS` that pays (else the dense path stays).

    On success ``pool`` gets the fused ``save``/``rule`` (its gradient goes straight to the
    convolution's input, ``pool.fused_target``) and the steps it replaced are returned;
    otherwise nothing changes and ``[]`` is returned.
    """
    if pool.pool_geometry is None:
        return []
    kp_h, kp_w, s_h, s_w, _ = pool.pool_geometry
    found = channelwise_chain(ctx, steps, pool.inputs[0], pools=False, shared_start=False)
    if found is None:
        return []
    chain, conv = found
    strides, dil, padding, _ = conv_geometry(ctx, conv)
    w = ctx.graph.const_value(conv.inputs[1])
    if (w is None or padding not in ("SAME", "VALID") or not is_unit_stride(strides, dil)
            or w.shape[2] > 4 or conv.grouped):
        return []
    shape = FirstLayer(kp_h, kp_w, s_h, s_w, *(int(d) for d in w.shape[:3]))
    costs = {name: way.cost(shape) for name, way in FIRST_LAYER_WAYS.items()}
    costs = {name: c for name, c in costs.items() if c is not None}
    if not costs:
        return []
    pool.fused_way = min(costs, key=costs.get)
    way = FIRST_LAYER_WAYS[pool.fused_way]
    ops = _channel_ops(ctx, chain)
    kinds = [kind for kind, _ in ops]
    derivs = [st.derivative for st in chain if st.derivative] if ctx.method.derivative else []
    pool.save = [way.save(ctx, pool, conv, w, padding, derivs, shape)] + [
        f for _, f in ops if f is not None]
    pool.rule = way.rule(ctx.tf, kinds, shape)
    pool.fused_target = conv.inputs[0]
    pool.fused_taps = way.held(shape)
    pool.fused_made = way.made(shape)
    return chain + [conv]


@dataclass(frozen=True)
class FirstLayerWay:
    """One way of running a fused first layer.

    ``cost(shape)``: its work per pooled cell and channel, in dense multiply-adds (None:
    it does not pay here); ``save(ctx, pool, conv, w, padding, derivs, shape)``: what the
    forward pass records; ``rule(tf, kinds, shape)``: the backward rule; ``held(shape)``:
    values per pooled cell and channel its backward pass holds per feature; ``made(shape)``:
    values per pooled unit its forward pass makes on the way to what it records (the
    switches' indices, a copy of the weights), for the memory plan.
    """

    cost: Callable[[FirstLayer], float | None]
    save: Callable[..., Callable[[dict], Any]]
    rule: Callable[[Any, list[str], FirstLayer], Callable]
    held: Callable[[FirstLayer], int]
    made: Callable[[FirstLayer], int]


def _cells_cost(s: FirstLayer) -> float | None:
    if s.kp_h * s.kp_w <= MAX_FUSED_POOL:
        return 0.0                         # small pools: always, as the cheapest
    return FUSED_GAIN * s.taps if FUSED_GAIN * s.taps <= s.dense else None


def _sparse_cost(s: FirstLayer) -> float | None:
    if s.kp_h * s.kp_w <= MAX_FUSED_POOL:
        return None
    cost = SPARSE_COST * s.kernel
    return cost if cost <= s.dense else None


#: The ways of running a fused first layer; :func:`fuse_first_layer` takes the cheapest.
FIRST_LAYER_WAYS: dict[str, FirstLayerWay] = {
    # per-cell weights, one batched matmul at pooled resolution (small pools; a pool over all
    # bands of a wide kernel, musicnn's timbral branches)
    "cells": FirstLayerWay(_cells_cost, cell_weights, cells_rule, lambda s: s.taps,
                           lambda s: 8 + s.taps),
    # a sparse matrix, one CSR product (a pool over all bands of a tall, narrow kernel,
    # musicnn's temporal branches)
    "sparse": FirstLayerWay(_sparse_cost, sparse_map, sparse_rule, lambda s: 0,
                            lambda s: 12 * s.kernel),
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
