"""One step of the backward pass, what its rule may know, and the tensor helpers rules share.

Layout of the backward signal: ``(F, N, ...)``, features first, then the forward tensor's
own axes (batch first).  A step's rule maps the signal at its output to the signals at
the inputs that depend on the model input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..graph import FrozenGraph, tensor_name
from ..graph.operations import Operation, operation
from ..options import Method

__all__ = ["Step", "Context", "CellsMajor", "dense", "merge", "split", "per_feature",
           "per_channel", "saved_input", "saved_shape"]


@dataclass
class Step:
    """One operation of the backward pass.

    Attributes
    ----------
    node : NodeDef
    var_inputs : list of int
        Which data inputs depend on the model input.
    inputs : list of str
        The node's data input tensors.
    save : list of callable
        ``env -> tensor``: what the forward pass records for the rule.
    rule : callable
        ``(g, saved, F) -> [gradient per var input]``, on ``(F, N, ...)`` signals.
    compact_rule : callable or None
        ``(g (F, N, H, W), saved, feats) -> g``: the same rule on one channel per feature.
    compact_pool : bool
        A max-pool whose switches allow the compact rule.
    fused_target : str or None
        The tensor a fused rule's gradient goes to (see :mod:`.fused`).
    fused_taps : int
        Per pooled cell, the fused rule's output values.
    fused_made : int
        Per pooled unit, the values the fused save makes on its way (the memory plan).
    fused_way : str
        Which way of :data:`mirdeconv.engine.fused.FIRST_LAYER_WAYS` the fused rule takes.
    pool_geometry : tuple or None
        ``(kh, kw, sh, sw, padding)`` of a max-pool over height and width (windows of
        ``kh x kw`` every ``sh x sw``).
    channelwise : bool
        The step works channel by channel (its rule sets it): the fast paths of
        :mod:`mirdeconv.engine.fused` may run through it.
    channel_op : tuple or None
        What a channelwise step does to the signal of each channel: ``("scale", env -> c)``,
        ``("divide", env -> c)``, ``("nonlinear", None)``; None: nothing.
    derivative : callable or None
        ``env -> f'(x)`` of a non-linearity.
    grouped : bool
        A grouped convolution (its kernel has fewer input channels than its input).
    n_outputs : int
        Outputs of the operation (Split has several); with more than one, the rule takes the
        list of the outputs' signals (None where an output has none).
    """

    node: Any
    var_inputs: list[int]
    inputs: list[str]
    save: list[Callable[[dict], Any]] = field(default_factory=list)
    rule: Callable | None = None
    compact_rule: Callable | None = None
    compact_pool: bool = False
    fused_target: str | None = None
    fused_taps: int = 0
    fused_made: int = 0
    fused_way: str = ""
    pool_geometry: tuple | None = None
    channelwise: bool = False
    channel_op: tuple[str, Callable | None] | None = None
    derivative: Callable | None = None
    grouped: bool = False
    n_outputs: int = 1

    @property
    def op(self) -> str:
        return self.node.op

    @property
    def operation(self) -> Operation:
        """The declaration of the step's operation type."""
        return operation(self.node.op)

    @property
    def output(self) -> str:
        """The tensor this step produces (``'node:0'``; its first, when it has several)."""
        return tensor_name(self.node.name)

    @property
    def outputs(self) -> list[str]:
        """Every tensor this step produces."""
        return [f"{self.node.name}:{k}" for k in range(self.n_outputs)]


@dataclass(frozen=True)
class Context:
    """What a rule may know while it is compiled.

    Attributes
    ----------
    tf : module
        TensorFlow.
    graph : FrozenGraph
    method : Method
        How the backward pass treats non-linearities (:data:`mirdeconv.options.METHODS`).
    rectified_by_pool : frozenset of str
        Non-linearities whose rectification the max-pool after them already applies.
    rectify_before_unpool : frozenset of str
        Max-pools that rectify their (pooled) signal before unpooling.
    shapes : dict
        Tensor -> its static shape as far as TensorFlow knows it (None dimensions unknown).
    """

    tf: Any
    graph: FrozenGraph
    method: Method
    rectified_by_pool: frozenset[str] = frozenset()
    rectify_before_unpool: frozenset[str] = frozenset()
    shapes: dict = field(default_factory=dict)

    def channels(self, tensor: str) -> int | None:
        """The last dimension of ``tensor``, when TensorFlow knows it."""
        shape = self.shapes.get(tensor)
        return shape[-1] if shape else None


class CellsMajor:
    """A backward signal kept in the layout (N, H, W, F, C) that a compact transposed conv
    produces and a fused first layer consumes, so neither has to transpose it."""

    def __init__(self, t: Any, tf: Any) -> None:
        self.t, self.tf = t, tf

    def dense(self) -> Any:
        """The engine's usual layout (F, N, H, W, C)."""
        return self.tf.transpose(self.t, [3, 0, 1, 2, 4])


def dense(g: Any) -> Any:
    """The signal in the usual ``(F, N, ...)`` layout."""
    return g.dense() if isinstance(g, CellsMajor) else g


def merge(tf: Any, g: Any) -> Any:
    """(F, N, ...) -> (F*N, ...)."""
    s = tf.shape(g)
    return tf.reshape(g, tf.concat([[s[0] * s[1]], s[2:]], 0))


def split(tf: Any, g: Any, F: Any) -> Any:
    """(F*N, ...) -> (F, N, ...)."""
    s = tf.shape(g)
    return tf.reshape(g, tf.concat([[F, s[0] // F], s[1:]], 0))


def per_feature(tf: Any, t: Any, feats: Any) -> Any:
    """A saved (N, H, W, C) tensor -> (F, N, H, W) for the selected features."""
    return tf.transpose(tf.gather(t, feats, axis=3), [3, 0, 1, 2])


def per_channel(tf: Any, c: Any, feats: Any) -> Any:
    """A per-channel constant (C,) or scalar -> (F, 1, 1, 1)."""
    c = tf.reshape(c, [-1])
    c = tf.cond(tf.size(c) > 1, lambda: tf.gather(c, feats), lambda: tf.tile(c, tf.shape(feats)))
    return tf.reshape(c, [-1, 1, 1, 1])


def saved_input(step: Step, k: int = 0) -> Callable[[dict], Any]:
    """``env -> `` the step's k-th data input."""
    t = step.inputs[k]
    return lambda env: env[t]


def saved_shape(ctx: Context, step: Step, k: int = 0) -> Callable[[dict], Any]:
    """``env -> `` the shape of the step's k-th data input."""
    t = step.inputs[k]
    return lambda env: ctx.tf.shape(env[t])
