"""The deconvolution engine: deconvnet, guided backprop and saliency on frozen graphs.

For one layer and a list of its features the engine

1. runs the forward pass ONCE (batch = 1 whole track, or the track's patches),
   recording what the backward pass needs: max-pool switches, the derivatives of
   the non-linearities, the kernels;
2. seeds the backward pass, for every feature at once (in chunks of bounded
   memory), with the feature's own activation map (``target="map"``, Zeiler &
   Fergus / Choi) or only its strongest unit (``target="max"``);
3. walks the graph back to the input with one rule per operation, batched over
   the features:

   ============  ==========================================================
   method        rule at every non-linearity ``y = f(x)``
   ============  ==========================================================
   deconvnet     ``relu(g)`` (the backward signal is rectified; Zeiler-Fergus)
   guided        ``relu(g) * f'(x)`` (guided backprop)
   saliency      ``g * f'(x)`` (the plain gradient)
   ============  ==========================================================

   Max-pooling is undone with the switches of the forward pass (the position of
   each maximum, first one on ties, as TensorFlow does); convolutions become
   transposed convolutions; batch norm in inference, average pooling, padding,
   concatenation, residual additions and reshapes are linear and use their exact
   transposes.  Biases are ignored (they have no gradient).

The result lives in the model input's domain (time x bands), one mask per feature.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backend
from .errors import (
    AudioTooShortError,
    FeatureIndexError,
    InvalidOptionError,
    UnsupportedGraphError,
)
from .graph import (
    BN_OPS,
    CONV_OPS,
    NONLINEAR_OPS,
    PASS_OPS,
    SHAPE_OPS,
    FrozenGraph,
    LayerInfo,
    node_name,
    tensor_name,
)

if TYPE_CHECKING:  # pragma: no cover
    from .adapters.base import FrozenModel
    from .representations import Analysis

__all__ = ["METHODS", "TARGETS", "MODES", "DeconvResult", "deconvolve", "parse_features", "Program"]

METHODS = ("deconvnet", "guided", "saliency")
PRECISIONS = ("float32", "bfloat16")
TARGETS = ("map", "max")
MODES = ("auto", "whole", "patches")

#: Memory the backward pass of one chunk of features may use, in bytes.
DEFAULT_MEMORY = 2 << 30


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InvalidOptionError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def parse_features(features: Any, n_features: int) -> list[int]:
    """Turn a feature selection into a list of indices.

    Parameters
    ----------
    features : None, int, iterable of int, or str
        ``None`` or ``"all"``: every feature; an int; a list; or a string such as
        ``"0-7,12,20-23"`` (ranges inclusive).
    n_features : int
        The layer's number of features.

    Raises
    ------
    FeatureIndexError
        An index outside ``0 .. n_features - 1``.
    InvalidOptionError
        A string that cannot be parsed, or an empty selection.
    """
    if features is None or (isinstance(features, str) and features.strip().lower() == "all"):
        return list(range(n_features))
    out: list[int] = []
    if isinstance(features, str):
        for part in features.replace(" ", "").split(","):
            if not part:
                continue
            try:
                if "-" in part[1:]:
                    a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                    lo, hi = int(a), int(b)
                    if hi < lo:
                        raise ValueError
                    out.extend(range(lo, hi + 1))
                else:
                    out.append(int(part))
            except ValueError:
                raise InvalidOptionError(
                    f"cannot read feature selection {features!r}: use e.g. '0-63' or '3,5,10-12'"
                ) from None
    elif isinstance(features, (int, np.integer)):
        out = [int(features)]
    else:
        try:
            out = [int(f) for f in features]
        except (TypeError, ValueError):
            raise InvalidOptionError(f"features must be indices, got {features!r}") from None
    if not out:
        raise InvalidOptionError("the feature selection is empty")
    bad = [f for f in out if not 0 <= f < n_features]
    if bad:
        raise FeatureIndexError(
            f"feature index {bad[0]} is out of range: this layer has {n_features} features "
            f"(0-{n_features - 1})"
        )
    return out


# =====================================================================================
# the compiled program for one (graph, input, layer, method)
# =====================================================================================
@dataclass
class _Step:
    """One operation of the backward pass."""

    node: Any
    var_inputs: list[int]            # which data inputs depend on the input
    inputs: list[str]                # data input tensor names
    save: list[Callable[[dict], Any]] = field(default_factory=list)  # forward -> saved tensors
    rule: Callable | None = None     # (g, saved, F) -> list of grads for var_inputs
    compact_rule: Callable | None = None  # (g (F, N, H, W), saved, feats) -> g, one channel
    compact_pool: bool = False       # a max-pool whose switches allow the compact rule
    fused_target: str | None = None  # the tensor a fused rule's gradient goes to
    fused_taps: int = 0              # per pooled cell, the fused rule's output values
    pool_geometry: tuple | None = None  # (kh, kw, padding) of a fast-path max-pool


class Program:
    """Forward-once, batched-backward deconvolution for one layer of one graph.

    Parameters
    ----------
    graph : FrozenGraph
    input_tensor : str
        The graph's input tensor (its batch axis is axis 0).
    layer_tensor : str
        The feature layer's tensor.
    feature_axis : int
        Axis of ``layer_tensor`` that holds the features.
    method : {"deconvnet", "guided", "saliency"}
    precision : {"float32", "bfloat16"}
        Arithmetic of the backward pass.  bfloat16 runs this CPU's convolutions about twice
        as fast (oneDNN/AMX) with about 3 significant digits; the forward pass (switches,
        activations) always runs in float32.
    """

    def __init__(
        self,
        graph: FrozenGraph,
        input_tensor: str,
        layer_tensor: str,
        feature_axis: int,
        method: str = "deconvnet",
        precision: str = "float32",
    ) -> None:
        self.tf = tf = backend.tensorflow()
        self.graph = graph
        self.method = _check_choice("method", method, METHODS)
        self.precision = _check_choice("precision", precision, PRECISIONS)
        self.input = tensor_name(input_tensor)
        self.layer = tensor_name(layer_tensor)
        self.feature_axis = feature_axis
        order = graph.ancestors([self.layer])
        if node_name(self.input) not in order:
            raise UnsupportedGraphError(
                f"layer {self.layer} does not depend on the input {self.input}"
            )
        self.var = graph.depends_on(order, self.input)
        self._find_rectify_pairs(order)
        self.steps: list[_Step] = []
        for name in order:
            if name not in self.var or name == node_name(self.input):
                continue
            node = graph.nodes[name]
            inputs = graph.data_inputs(node)
            var_inputs = [i for i, t in enumerate(inputs) if node_name(t) in self.var]
            step = _Step(node, var_inputs, inputs)
            _RULES.get(node.op, _unsupported)(self, step)
            self.steps.append(step)
        self.compact = self._find_compact_chain()
        self.fused_skipped: set[int] = set()
        for st in self.steps:
            _fuse_first_conv(self, st)
        self._fetch: list[str] = sorted(
            {t for s in self.steps for t in s.inputs} | {tensor_name(s.node.name) for s in self.steps}
            | {self.layer}
        )
        self._fetch = [t for t in self._fetch if node_name(t) != node_name(self.input)]
        gd = graph.subgraph_def([self.layer])
        self._graph_def = gd
        self._forward_fn: Any = None
        self._backward_fn = tf.function(self._backward, reduce_retracing=True, autograph=False)

    def _find_rectify_pairs(self, order: list[str]) -> None:
        """Max-pools fed only by a rectifying non-linearity: with the deconvnet and guided
        rules, relu(unpool(g)) == unpool(relu(g)), so the pool's rule rectifies the
        pooled-size signal (4x fewer values for 2x2 pools) and the non-linearity skips it."""
        self.rectify_before_unpool: set[str] = set()
        self.rectified_by_pool: set[str] = set()
        if self.method == "saliency":
            return
        consumers: dict[str, list[str]] = {}
        for name in order:
            for t in self.graph.data_inputs(self.graph.nodes[name]):
                consumers.setdefault(node_name(t), []).append(name)
        for name in order:
            node = self.graph.nodes[name]
            if node.op not in ("MaxPool", "MaxPoolV2") or name not in self.var:
                continue
            src = node_name(node.input[0])
            if (self.graph.nodes[src].op in NONLINEAR_OPS and consumers.get(src) == [name]
                    and tensor_name(src) != self.layer):
                self.rectify_before_unpool.add(name)
                self.rectified_by_pool.add(src)

    def _find_compact_chain(self) -> list[_Step] | None:
        """The steps from the layer down to (and including) the first convolution, when every
        one of them works channel by channel.  Below the seed the backward signal then stays
        zero in every channel but the feature's own, so the engine carries it as ONE channel
        per feature (F, N, H, W) and the first transposed convolution needs only the feature's
        own kernel slice: a depthwise convolution instead of a full one."""
        if self.feature_axis != 3:
            return None
        by_out = {tensor_name(st.node.name): st for st in self.steps}
        users: dict[str, int] = {}
        for st in self.steps:
            for t in st.inputs:
                users[t] = users.get(t, 0) + 1
        chain: list[_Step] = []
        t = self.layer
        while t in by_out:
            st = by_out[t]
            op = st.node.op
            if st.var_inputs != [0] or (chain and users.get(t, 0) != 1):
                return None
            if op == "Conv2D":
                strides, dil, _, _ = _conv_geometry(self, st)
                if list(strides) != [1, 1, 1, 1] or list(dil) != [1, 1, 1, 1]:
                    return None
                return chain + [st]
            if op in ("MaxPool", "MaxPoolV2"):
                if not st.compact_pool:
                    return None
            elif op in ("Mul", "RealDiv"):
                c = self.graph.const_value(st.inputs[1])
                if c is None or c.ndim > 1 and any(d != 1 for d in c.shape[:-1]):
                    return None
            elif op not in PASS_OPS | NONLINEAR_OPS | BN_OPS | {"BiasAdd", "Add", "AddV2", "Sub"}:
                return None
            if op == "StopGradient":
                return None
            chain.append(st)
            t = st.inputs[0]
        return None

    # -- forward ----------------------------------------------------------------------
    def _build_forward(self, rank: int) -> Any:
        tf = self.tf
        fetch = self._fetch
        steps = self.steps
        kernels = self.graph.conv_kernels(self._graph_def)

        def fwd(x):
            fed = {k: tf.identity(v) for k, v in kernels.items()}
            outs = tf.graph_util.import_graph_def(
                self._graph_def, input_map={**fed, self.input: x}, return_elements=fetch, name="m")
            env = dict(zip(fetch, outs))
            env[self.input] = x
            saved = []
            for s in steps:
                saved.append([f(env) for f in s.save])
            # per feature and batch item: the gradient values the backward pass holds
            n = tf.maximum(tf.cast(tf.shape(x)[0], tf.int64), 1)
            compact = {id(st) for st in (self.compact or [])}
            sizes = [tf.size(x, tf.int64)]
            for s in steps:
                if id(s) in self.fused_skipped:
                    continue
                out_size = tf.size(env[tensor_name(s.node.name)], tf.int64)
                if id(s) in compact:  # one channel per feature
                    out_size //= tf.cast(tf.shape(env[tensor_name(s.node.name)])[-1], tf.int64)
                sizes.append(out_size)
                if s.fused_target is not None:  # per pooled cell: the taps of every channel
                    y = env[tensor_name(s.node.name)]
                    sizes.append(out_size // tf.cast(tf.shape(y)[-1], tf.int64) * s.fused_taps)
            elems = tf.add_n(sizes) // n
            return env[self.layer], saved, elems

        spec = tf.TensorSpec([None] * rank, tf.float32)
        return tf.compat.v1.wrap_function(fwd, [spec])

    def forward(self, x: np.ndarray) -> tuple[Any, Any, int]:
        """Run the forward pass once.

        Returns
        -------
        activations : tf.Tensor
            The layer's output.
        saved : nested list of tf.Tensor
            What the backward pass needs.
        elems : int
            Elements of all tensors between the input and the layer, per batch item: a bound
            on what the backward pass holds per feature.
        """
        if self._forward_fn is None:
            self._forward_fn = self._build_forward(np.ndim(x))
        self._input_shape = tuple(np.shape(x))
        try:
            act, saved, elems = self._forward_fn(self.tf.constant(x, self.tf.float32))
            return act, saved, int(elems)
        except self.tf.errors.InvalidArgumentError as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedGraphError(
                f"the graph cannot run on an input of shape {tuple(np.shape(x))}: {msg}"
            ) from None

    # -- backward ---------------------------------------------------------------------
    def _backward(self, act, saved, feats, target_max):
        tf = self.tf
        F = tf.shape(feats)[0]
        if self.precision == "bfloat16":
            def low(t):
                return tf.cast(t, tf.bfloat16) if t.dtype == tf.float32 else t

            act, saved = low(act), tf.nest.map_structure(low, saved)
        saved_of = {id(st): sv for st, sv in zip(self.steps, saved)}
        if self.compact:
            g = _select(tf, act, feats, 3, target_max)              # (F, N, H, W)
            for st in self.compact:
                g = st.compact_rule(g, saved_of[id(st)], feats)
            grads = {self.compact[-1].inputs[0]: g}
            skip = {id(st) for st in self.compact}
        else:
            grads = {self.layer: _seed(tf, act, feats, self.feature_axis, target_max)}
            skip = set()
        for step, sv in zip(reversed(self.steps), reversed(saved)):
            if id(step) in skip:
                continue
            out = tensor_name(step.node.name)
            g = grads.pop(out, None)
            if g is None:
                continue
            if step.fused_target is None:
                g = _dense(g)
            gins = step.rule(g, sv, F)
            if step.fused_target is not None:
                t = step.fused_target
                grads[t] = _dense(grads[t]) + gins[0] if t in grads else gins[0]
                continue
            for k, gi in zip(step.var_inputs, gins):
                if gi is None:
                    continue
                t = step.inputs[k]
                grads[t] = _dense(grads[t]) + gi if t in grads else gi
        g = grads.get(self.input)
        if g is None:  # no gradient path (StopGradient)
            return None
        return tf.cast(_dense(g), tf.float32)

    def backward(self, act: Any, saved: Any, features: Sequence[int], target: str) -> np.ndarray:
        """Deconvolve ``features`` (one chunk); returns ``(F, N, *input_shape[1:])`` float32."""
        tf = self.tf
        feats = tf.constant(np.asarray(features, np.int32))
        out = self._backward_fn(act, saved, feats, tf.constant(target == "max"))
        if out is None:
            return np.zeros((len(features), *self._input_shape), np.float32)
        return out.numpy()


# =====================================================================================
# seeds
# =====================================================================================
def _select(tf, act, feats, axis, target_max):
    """The selected features' maps, (F, N, ...) without the features axis; with ``target_max``
    only each map's strongest unit (first one on ties) is kept."""
    rank = act.shape.rank
    sel = tf.gather(act, feats, axis=axis)                               # feats on `axis`
    sel = tf.transpose(sel, [axis] + [i for i in range(rank) if i != axis])

    def strongest(s):
        flat = tf.reshape(s, [tf.shape(s)[0], -1])
        idx = tf.argmax(flat, axis=1, output_type=tf.int32)
        return tf.reshape(tf.one_hot(idx, tf.shape(flat)[1], dtype=s.dtype) * flat, tf.shape(s))

    return tf.cond(target_max, lambda: strongest(sel), lambda: sel)


def _seed(tf, act, feats, axis, target_max):
    """Seeds for the backward pass: (F, N, ...) with only feature f's map (or its max unit)."""
    rank = act.shape.rank
    sel = _select(tf, act, feats, axis, target_max)                      # (F, N, ..., no C)
    C = tf.shape(act)[axis]
    onehot = tf.one_hot(feats, C, dtype=act.dtype)                       # (F, C)
    shape = tf.concat([[tf.shape(feats)[0]], tf.ones([rank - 1], tf.int32), [C]], 0)
    seed = sel[..., None] * tf.reshape(onehot, shape)                    # (F, N, ..., C)
    perm = [i for i in range(rank) if i != axis] + [axis]               # where C goes back
    return tf.transpose(seed, [0] + [1 + int(p) for p in np.argsort(perm)])


class _CellsMajor:
    """A backward signal kept in the layout (N, H, W, F, C) that a compact transposed conv
    produces and a fused first layer consumes, so neither has to transpose it."""

    def __init__(self, t: Any, tf: Any) -> None:
        self.t, self.tf = t, tf

    def dense(self) -> Any:
        """The engine's usual layout (F, N, H, W, C)."""
        return self.tf.transpose(self.t, [3, 0, 1, 2, 4])


def _dense(g: Any) -> Any:
    return g.dense() if isinstance(g, _CellsMajor) else g


def _per_feature(tf, t, feats):
    """A saved (N, H, W, C) tensor -> (F, N, H, W) for the selected features."""
    return tf.transpose(tf.gather(t, feats, axis=3), [3, 0, 1, 2])


def _per_channel(tf, c, feats):
    """A per-channel constant (C,) or scalar -> (F, 1, 1, 1)."""
    c = tf.reshape(c, [-1])
    c = tf.cond(tf.size(c) > 1, lambda: tf.gather(c, feats), lambda: tf.tile(c, tf.shape(feats)))
    return tf.reshape(c, [-1, 1, 1, 1])


# =====================================================================================
# backward rules: each fills step.save (forward -> tensors) and step.rule
# =====================================================================================
def _merge(tf, g):
    """(F, N, ...) -> (F*N, ...)."""
    s = tf.shape(g)
    return tf.reshape(g, tf.concat([[s[0] * s[1]], s[2:]], 0))


def _split(tf, g, F):
    """(F*N, ...) -> (F, N, ...)."""
    s = tf.shape(g)
    return tf.reshape(g, tf.concat([[F, s[0] // F], s[1:]], 0))


def _unsupported(prog: Program, step: _Step) -> None:
    raise UnsupportedGraphError(
        f"operation {step.node.op} ({step.node.name}) lies between the input and the layer; "
        "the engine cannot deconvolve through it"
    )


def _in(step: _Step, k: int = 0) -> Callable[[dict], Any]:
    t = step.inputs[k]
    return lambda env: env[t]


def _shape_of(prog: Program, step: _Step, k: int = 0) -> Callable[[dict], Any]:
    t = step.inputs[k]
    return lambda env: prog.tf.shape(env[t])


def _rule_pass(prog: Program, step: _Step) -> None:
    if step.node.op == "StopGradient":
        step.rule = lambda g, sv, F: [None]
    else:
        step.rule = lambda g, sv, F: [g]
        step.compact_rule = lambda g, sv, feats: g


def _rule_nonlinear(prog: Program, step: _Step) -> None:
    tf = prog.tf
    op = step.node.op
    method = prog.method
    alpha = prog.graph.attr(step.node, "alpha")
    out = tensor_name(step.node.name)
    x_t = step.inputs[0]

    def deriv(env):
        x, y = env[x_t], env[out]
        if op == "Relu":
            d = tf.cast(x > 0, x.dtype)
        elif op == "Relu6":
            d = tf.cast((x > 0) & (x < 6), x.dtype)
        elif op == "Elu":
            d = tf.where(x > 0, tf.ones_like(x), y + 1.0)
        elif op == "Selu":
            scale, a = 1.0507009873554805, 1.6732632423543772
            d = tf.where(x > 0, scale * tf.ones_like(x), y + scale * a)
        elif op == "LeakyRelu":
            slope = tf.cast(alpha if alpha is not None else 0.2, x.dtype)
            d = tf.where(x > 0, tf.ones_like(x), slope * tf.ones_like(x))
        elif op == "Softplus":
            d = tf.sigmoid(x)
        elif op == "Sigmoid":
            d = y * (1.0 - y)
        else:  # Tanh
            d = 1.0 - y * y
        return d

    done = step.node.name in prog.rectified_by_pool  # the max-pool after it rectified already
    rect = (lambda g: g) if done else tf.nn.relu
    if method == "deconvnet":
        step.rule = lambda g, sv, F: [rect(g)]
    else:
        step.save = [deriv]
        if method == "guided":
            step.rule = lambda g, sv, F: [rect(g) * sv[0]]
        else:
            step.rule = lambda g, sv, F: [g * sv[0]]
    if method == "deconvnet":
        step.compact_rule = lambda g, sv, feats: tf.nn.relu(g)
    elif method == "guided":
        step.compact_rule = lambda g, sv, feats: tf.nn.relu(g) * _per_feature(tf, sv[0], feats)
    else:
        step.compact_rule = lambda g, sv, feats: g * _per_feature(tf, sv[0], feats)


def _unbroadcast(tf, g, shape):
    """Sum g (F, N', ...) down to ``shape`` (a forward tensor's shape, batch included)."""
    gs = tf.shape(g)[1:]
    rank_g = g.shape.rank - 1
    shape = tf.cast(shape, tf.int32)
    n = tf.size(shape)
    full = tf.concat([tf.ones([rank_g - n], tf.int32), shape], 0)
    _, red = tf.raw_ops.BroadcastGradientArgs(s0=full, s1=gs)
    g = tf.reduce_sum(g, axis=red + 1, keepdims=True)
    return tf.reshape(g, tf.concat([tf.shape(g)[:1], shape], 0))


def _rule_arith(prog: Program, step: _Step) -> None:
    tf = prog.tf
    op = step.node.op
    ins = step.inputs
    var = step.var_inputs
    if op == "Neg":
        step.rule = lambda g, sv, F: [-g]
        return
    if op == "BiasAdd":
        if var != [0]:
            _unsupported(prog, step)
        step.rule = lambda g, sv, F: [g]
        step.compact_rule = lambda g, sv, feats: g
        return
    step.save = [lambda env, t=t: tf.shape(env[t]) for t in ins]
    if op in ("Mul", "RealDiv"):
        step.save += [lambda env, t=t: env[t] for t in ins]
    if op == "RealDiv" and 1 in var:
        _unsupported(prog, step)

    def rule(g, sv, F):
        shapes, vals = sv[:2], sv[2:]
        out = []
        for k in var:
            if op in ("Add", "AddV2"):
                gk = g
            elif op == "Sub":
                gk = g if k == 0 else -g
            elif op == "Mul":
                gk = g * vals[1 - k]
            else:  # RealDiv, var numerator
                gk = g / vals[1]
            out.append(_unbroadcast(tf, gk, shapes[k]))
        return out

    step.rule = rule
    if var == [0]:  # used only when the other operand is a per-channel constant
        if op == "Mul":
            step.compact_rule = lambda g, sv, feats: g * _per_channel(tf, sv[3], feats)
        elif op == "RealDiv":
            step.compact_rule = lambda g, sv, feats: g / _per_channel(tf, sv[3], feats)
        else:
            step.compact_rule = lambda g, sv, feats: g


def _rule_bn(prog: Program, step: _Step) -> None:
    tf = prog.tf
    g_ = prog.graph
    if g_.attr(step.node, "is_training"):
        raise UnsupportedGraphError(
            f"{step.node.name}: batch normalisation in training mode; export the model for "
            "inference (is_training=False)"
        )
    if step.var_inputs != [0]:
        _unsupported(prog, step)
    eps = g_.attr(step.node, "epsilon") or 1e-3
    ins = step.inputs

    def scale(env):
        return env[ins[1]] * tf.math.rsqrt(env[ins[4]] + eps)

    step.save = [scale]
    step.rule = lambda g, sv, F: [g * sv[0]]
    step.compact_rule = lambda g, sv, feats: g * _per_channel(tf, sv[0], feats)


def _conv_geometry(prog: Program, step: _Step):
    g_ = prog.graph
    node = step.node
    strides = g_.attr(node, "strides") or [1, 1, 1, 1]
    dil = g_.attr(node, "dilations") or [1, 1, 1, 1]
    padding = g_.attr(node, "padding")
    explicit = g_.attr(node, "explicit_paddings") or []
    fmt = g_.attr(node, "data_format") or "NHWC"
    if fmt != "NHWC":
        raise UnsupportedGraphError(f"{node.name}: data_format {fmt} is not supported (NHWC only)")
    return strides, dil, padding, explicit


def _rule_conv(prog: Program, step: _Step) -> None:
    tf = prog.tf
    node = step.node
    if step.var_inputs != [0]:
        raise UnsupportedGraphError(f"{node.name}: convolution kernel depends on the input")
    strides, dil, padding, explicit = _conv_geometry(prog, step)
    w = prog.graph.const_value(step.inputs[1])
    step.save = [_in(step, 1), _shape_of(prog, step, 0)]
    depthwise = node.op == "DepthwiseConv2dNative"
    if node.op == "Conv3D":
        _unsupported(prog, step)
    small = (
        not depthwise and w is not None and w.shape[2] * w.shape[0] * w.shape[1] <= 32
        and w.shape[2] <= 4 and list(strides) == [1, 1, 1, 1] and list(dil) == [1, 1, 1, 1]
    )

    if small:
        kh, kw, cin, cout = w.shape

        def rule(g, sv, F):
            W, xs = sv
            H, Wd = xs[1], xs[2]
            Ho, Wo = tf.shape(g)[2], tf.shape(g)[3]
            pt, pl = _pads(tf, padding, explicit, H, Wd, Ho, Wo, kh, kw)
            # Z[..., (i, j, c)] = sum_o g[..., o] W[i, j, c, o]: one matmul, no 1-channel conv
            Wm = tf.reshape(W, [kh * kw * cin, cout])
            gs = tf.shape(g)                      # F, N, Ho, Wo, Cout
            # Z[(i, j, c), :] = W[i, j, c, :] . g: one matmul, every tap a contiguous plane
            Z = tf.matmul(Wm, tf.reshape(g, [-1, cout]), transpose_b=True)
            Z = tf.reshape(Z, tf.concat([[kh * kw * cin], gs[:-1]], 0))   # K, F, N, Ho, Wo
            Z = tf.pad(Z, [[0, 0], [0, 0], [0, 0], [kh - 1, H + kh], [kw - 1, Wd + kw]])
            dx = None
            for i in range(kh):
                for j in range(kw):
                    k0 = (i * kw + j) * cin
                    sl = Z[k0:k0 + cin, :, :, pt + kh - 1 - i: pt + kh - 1 - i + H,
                           pl + kw - 1 - j: pl + kw - 1 - j + Wd]
                    dx = sl if dx is None else dx + sl
            dx = tf.transpose(dx, [1, 2, 3, 4, 0]) if cin > 1 else tf.reshape(
                dx, tf.concat([tf.shape(dx)[1:], [1]], 0))
            return [dx]
    else:

        def rule(g, sv, F):
            W, xs = sv
            gm = _merge(tf, g)
            sizes = tf.concat([tf.shape(gm)[:1], xs[1:]], 0)
            if depthwise:
                dx = tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                    input_sizes=sizes, filter=W, out_backprop=gm, strides=strides,
                    padding=padding, explicit_paddings=explicit, dilations=dil)
            else:
                dx = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=sizes, filter=W, out_backprop=gm, strides=strides,
                    padding=padding, explicit_paddings=explicit, dilations=dil)
            return [_split(tf, dx, F)]

    step.rule = rule
    if not depthwise and padding in ("SAME", "VALID"):
        kh, kw = (w.shape[0], w.shape[1]) if w is not None else (None, None)

        def compact_rule(g, sv, feats):
            # per feature f: its one-channel map through conv^T with W[..., f] only, i.e. a
            # depthwise correlation of the padded map with the flipped, gathered kernels
            W, xs = sv
            H, Wd = xs[1], xs[2]
            Ho, Wo = tf.shape(g)[2], tf.shape(g)[3]
            pt, pl = _pads(tf, padding, [], H, Wd, Ho, Wo, kh, kw)
            pb, pr = Ho - H - pt + kh - 1, Wo - Wd - pl + kw - 1
            x = tf.transpose(g, [1, 2, 3, 0])                          # N, Ho, Wo, F
            x = tf.pad(x, [[0, 0], [kh - 1 - pt, kh - 1 - pb], [kw - 1 - pl, kw - 1 - pr], [0, 0]])
            k = tf.transpose(tf.reverse(tf.gather(W, feats, axis=3), [0, 1]), [0, 1, 3, 2])
            y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=k, strides=[1, 1, 1, 1],
                                                 padding="VALID")      # N, H, W, F*Cin
            ys = tf.shape(y)
            y = tf.reshape(y, tf.stack([ys[0], ys[1], ys[2], tf.shape(feats)[0], tf.shape(W)[2]]))
            return _CellsMajor(y, tf)                                  # N, H, W, F, Cin

        step.compact_rule = compact_rule


def _pads(tf, padding, explicit, H, W, Ho, Wo, kh, kw):
    """Top/left padding of a stride-1 convolution."""
    if padding == "VALID":
        return 0, 0
    if padding == "EXPLICIT":
        return explicit[2], explicit[4]
    return (tf.maximum(Ho - 1 + kh - H, 0) // 2, tf.maximum(Wo - 1 + kw - W, 0) // 2)


def _rule_maxpool(prog: Program, step: _Step) -> None:
    tf = prog.tf
    node = step.node
    g_ = prog.graph
    if node.op == "MaxPoolV2":
        ksize = [int(v) for v in g_.const_value(step.inputs[1])]
        strides = [int(v) for v in g_.const_value(step.inputs[2])]
    else:
        ksize, strides = g_.attr(node, "ksize"), g_.attr(node, "strides")
    padding = g_.attr(node, "padding")
    if (g_.attr(node, "data_format") or "NHWC") != "NHWC":
        raise UnsupportedGraphError(f"{node.name}: data_format must be NHWC")
    out = tensor_name(node.name)
    x_t = step.inputs[0]
    kh, kw = ksize[1], ksize[2]
    rectify = step.node.name in prog.rectify_before_unpool
    if list(ksize) == list(strides) and ksize[0] == 1 and ksize[3] == 1:
        # non-overlapping windows: the switches are a 0/1 mask of the input's shape, made
        # once by TensorFlow's own MaxPoolGrad (first maximum on ties), stored as
        # (N, Ho, kh, Wo, kw, C) so that unpooling is ONE broadcast multiply
        def switches(env):
            x, y = env[x_t], env[out]
            mask = tf.raw_ops.MaxPoolGrad(orig_input=x, orig_output=y, grad=tf.ones_like(y),
                                          ksize=ksize, strides=strides, padding=padding)
            s, xs = tf.shape(y), tf.shape(x)
            ho, wo = s[1] * kh, s[2] * kw
            pt = tf.maximum(ho - xs[1], 0) // 2 if padding == "SAME" else 0
            pl = tf.maximum(wo - xs[2], 0) // 2 if padding == "SAME" else 0
            # the covered region [-pt, ho - pt) x [-pl, wo - pl) of the input
            mask = tf.pad(mask, [[0, 0], [pt, tf.maximum(ho - pt - xs[1], 0)],
                                 [pl, tf.maximum(wo - pl - xs[2], 0)], [0, 0]])
            mask = mask[:, :ho, :wo]
            mask6 = tf.reshape(mask, tf.stack([s[0] * s[1], kh, s[2], kw * s[3]]))
            return mask6, tf.stack([xs[1], xs[2], pt, pl])

        step.save = [switches]

        def rule(g, sv, F):
            mask6, geo = sv[0]
            if rectify:  # relu(unpool(g)) == unpool(relu(g)): rectify the small tensor
                g = tf.nn.relu(g)
            s = tf.shape(g)                       # F, N, Ho, Wo, C
            # (F, N*Ho, 1, Wo, kw*C) * (N*Ho, kh, Wo, kw*C): TensorFlow broadcasts up to
            # rank 5, so the kw copies are tiled into the channel axis (pooled size only)
            gt = tf.tile(tf.reshape(g, tf.stack([s[0], s[1] * s[2], s[3], s[4]])), [1, 1, 1, kw])
            up = gt[:, :, None] * mask6
            up = tf.reshape(up, tf.stack([s[0], s[1], s[2] * kh, s[3] * kw, s[4]]))
            H, W, pt, pl = geo[0], geo[1], geo[2], geo[3]
            ho, wo = s[2] * kh, s[3] * kw

            def fit(u):
                u = u[:, :, pt:pt + H, pl:pl + W]
                return tf.pad(u, [[0, 0], [0, 0], [0, H - tf.shape(u)[2]],
                                  [0, W - tf.shape(u)[3]], [0, 0]])

            exact = tf.logical_and(tf.equal(ho, H), tf.equal(wo, W))
            return [tf.cond(exact, lambda: up, lambda: fit(up))]

        def compact_rule(g, sv, feats):
            mask6, geo = sv[0]
            s = tf.shape(g)                       # F, N, Ho, Wo
            C = tf.shape(mask6)[3] // kw
            mask = tf.reshape(mask6, tf.stack([s[1], s[2] * kh, s[3] * kw, C]))
            m = tf.reshape(_per_feature(tf, mask, feats), tf.stack([s[0], s[1] * s[2], kh, s[3], kw]))
            up = tf.reshape(g, tf.stack([s[0], s[1] * s[2], 1, s[3], 1])) * m
            up = tf.reshape(up, tf.stack([s[0], s[1], s[2] * kh, s[3] * kw]))
            H, W, pt, pl = geo[0], geo[1], geo[2], geo[3]
            up = up[:, :, pt:pt + H, pl:pl + W]
            return tf.pad(up, [[0, 0], [0, 0], [0, H - tf.shape(up)[2]], [0, W - tf.shape(up)[3]]])

        step.compact_rule = compact_rule
        step.compact_pool = True
        step.pool_geometry = (kh, kw, padding)
    else:
        step.save = [_in(step, 0), lambda env: env[out]]

        def rule(g, sv, F):
            x, y = sv
            if rectify:
                g = tf.nn.relu(g)
            reps = tf.concat([[F], tf.ones([x.shape.rank - 1], tf.int32)], 0)
            dx = tf.raw_ops.MaxPoolGrad(orig_input=tf.tile(x, reps), orig_output=tf.tile(y, reps),
                                        grad=_merge(tf, g), ksize=ksize, strides=strides,
                                        padding=padding)
            return [_split(tf, dx, F)]

    step.rule = rule


def _rule_avgpool(prog: Program, step: _Step) -> None:
    tf = prog.tf
    g_ = prog.graph
    node = step.node
    ksize, strides, padding = g_.attr(node, "ksize"), g_.attr(node, "strides"), g_.attr(node, "padding")
    step.save = [_shape_of(prog, step)]

    def rule(g, sv, F):
        gm = _merge(tf, g)
        shape = tf.concat([tf.shape(gm)[:1], sv[0][1:]], 0)
        dx = tf.raw_ops.AvgPoolGrad(orig_input_shape=shape, grad=gm, ksize=ksize,
                                    strides=strides, padding=padding)
        return [_split(tf, dx, F)]

    step.rule = rule


def _rule_reshape(prog: Program, step: _Step) -> None:
    tf = prog.tf
    step.save = [_shape_of(prog, step)]
    step.rule = lambda g, sv, F: [tf.reshape(g, tf.concat([[F], sv[0]], 0))]


def _rule_transpose(prog: Program, step: _Step) -> None:
    tf = prog.tf
    perm = prog.graph.const_value(step.inputs[1])
    if perm is None or int(perm[0]) != 0:
        raise UnsupportedGraphError(f"{step.node.name}: a transpose that moves the batch axis")
    inv = [0] + [1 + int(p) for p in np.argsort(perm)]
    step.rule = lambda g, sv, F: [tf.transpose(g, inv)]


def _rule_pad(prog: Program, step: _Step) -> None:
    tf = prog.tf
    node = step.node
    step.save = [_shape_of(prog, step), _in(step, 1)]
    if node.op == "MirrorPad":
        mode = prog.graph.attr(node, "mode")

        def rule(g, sv, F):
            pads = tf.concat([[[0, 0]], tf.cast(sv[1], tf.int32)], 0)
            dx = tf.raw_ops.MirrorPadGrad(input=g, paddings=pads, mode=mode)
            return [dx]
    else:

        def rule(g, sv, F):
            shape, pads = sv
            begin = tf.concat([[0], tf.cast(pads[:, 0], tf.int32)], 0)
            size = tf.concat([[F], shape], 0)
            return [tf.slice(g, begin, size)]

    step.rule = rule


def _rule_concat(prog: Program, step: _Step) -> None:
    tf = prog.tf
    n = len(step.inputs) - 1
    const_axis = prog.graph.const_value(step.inputs[-1])
    if const_axis is None:
        _unsupported(prog, step)
    axis = int(np.asarray(const_axis))
    step.save = [lambda env, t=t: tf.shape(env[t]) for t in step.inputs[:n]]

    def rule(g, sv, F):
        ax = axis % (g.shape.rank - 1)
        parts = tf.split(g, tf.stack([s[ax] for s in sv]), axis=ax + 1)
        return [parts[k] for k in step.var_inputs]

    step.rule = rule


def _rule_strided_slice(prog: Program, step: _Step) -> None:
    tf = prog.tf
    g_ = prog.graph
    node = step.node
    masks = {k: g_.attr(node, k) or 0 for k in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    step.save = [_shape_of(prog, step)] + [_in(step, k) for k in (1, 2, 3)]

    def rule(g, sv, F):
        shape, b, e, s = sv
        full = tf.concat([[F], shape], 0)
        one = tf.ones([1], b.dtype)
        dx = tf.raw_ops.StridedSliceGrad(
            shape=tf.cast(full, b.dtype), begin=tf.concat([one * 0, b], 0),
            end=tf.concat([one, e], 0), strides=tf.concat([one, s], 0), dy=g,
            begin_mask=(masks["begin_mask"] << 1) | 1, end_mask=(masks["end_mask"] << 1) | 1,
            ellipsis_mask=masks["ellipsis_mask"] << 1, new_axis_mask=masks["new_axis_mask"] << 1,
            shrink_axis_mask=masks["shrink_axis_mask"] << 1)
        return [dx]

    step.rule = rule


def _rule_reduce(prog: Program, step: _Step) -> None:
    tf = prog.tf
    node = step.node
    op = node.op
    red = prog.graph.const_value(step.inputs[1])
    if red is None:
        _unsupported(prog, step)
    keep = bool(prog.graph.attr(node, "keep_dims"))
    x_t = step.inputs[0]
    red_list = [int(r) for r in np.ravel(red)]

    def weights(env):
        x = env[x_t]
        axes = [r % x.shape.rank for r in red_list]
        if op in ("Max", "Min"):  # TensorFlow's rule: ties share the gradient equally
            reduce = tf.reduce_max if op == "Max" else tf.reduce_min
            ind = tf.cast(tf.equal(x, reduce(x, axis=axes, keepdims=True)), x.dtype)
            return ind / tf.reduce_sum(ind, axis=axes, keepdims=True)
        w = tf.ones_like(x)
        if op == "Mean":
            w = w / tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
        return w

    step.save = [weights]

    def rule(g, sv, F):
        w = sv[0]
        rank = w.shape.rank
        axes = sorted(r % rank for r in red_list)
        if not keep:
            for a in axes:
                g = tf.expand_dims(g, a + 1)
        return [g * w]

    step.rule = rule


def _rule_matmul(prog: Program, step: _Step) -> None:
    tf = prog.tf
    g_ = prog.graph
    if step.var_inputs != [0]:
        _unsupported(prog, step)
    ta, tb = g_.attr(step.node, "transpose_a"), g_.attr(step.node, "transpose_b")
    if ta:
        _unsupported(prog, step)
    step.save = [_in(step, 1)]

    def rule(g, sv, F):
        W = sv[0]
        return [tf.einsum("fno,io->fni", g, W) if not tb else tf.einsum("fno,oi->fni", g, W)]

    step.rule = rule


# -------------------------------------------------------------------------------------
# the first layer, fused: unpool -> channelwise ops -> transposed conv with few input channels
# -------------------------------------------------------------------------------------
_FUSABLE = PASS_OPS | NONLINEAR_OPS | BN_OPS | {"BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv"}


def _fuse_first_conv(prog: Program, pool: _Step) -> None:
    """Fuse a max-pool's unpooling with the channelwise operations below it and a transposed
    convolution into an input with few channels (a network's first layer).

    Unpooled, the backward signal of the first layer is as large as the first conv's output
    times the number of features (e.g. 64 x 96 x 256 x 32 floats), and the transposed conv
    into a 1-channel input is memory-bound.  But for one track the map from the POOLED
    signal to the input is linear and the same for every feature: each pooled unit (cell,
    channel) sends its value, through its switch, to the conv kernel's taps.  So the forward
    pass folds switches x derivatives x kernel into per-cell weights B (cells, C, taps), and
    the backward pass is one batched matmul over cells at pooled size, a few shifted sums
    at pooled size, and one reshuffle that lays the sub-positions out on the input grid."""
    if pool.pool_geometry is None or prog.compact and pool in prog.compact:
        return
    tf = prog.tf
    g_ = prog.graph
    kp_h, kp_w, pool_pad = pool.pool_geometry
    by_out = {tensor_name(st.node.name): st for st in prog.steps}
    users: dict[str, int] = {}
    for st in prog.steps:
        for t in st.inputs:
            users[t] = users.get(t, 0) + 1
    chain: list[_Step] = []
    t = pool.inputs[0]
    while True:
        st = by_out.get(t)
        if st is None or users.get(t, 0) != 1 or st.var_inputs != [0]:
            return
        if st.node.op == "Conv2D":
            conv = st
            break
        if st.node.op not in _FUSABLE or st.node.op == "StopGradient":
            return
        if st.node.op in ("Mul", "RealDiv"):
            c = g_.const_value(st.inputs[1])
            if c is None or c.ndim > 1 and any(d != 1 for d in c.shape[:-1]):
                return
        chain.append(st)
        t = st.inputs[0]
    strides, dil, padding, _ = _conv_geometry(prog, conv)
    w = g_.const_value(conv.inputs[1])
    if (w is None or padding not in ("SAME", "VALID") or list(strides) != [1, 1, 1, 1]
            or list(dil) != [1, 1, 1, 1] or w.shape[2] > 4):
        return
    kc_h, kc_w, cin, cout = (int(d) for d in w.shape)
    if kp_h * kp_w > 16:  # large pools (e.g. over all bands) would need huge per-cell weights
        return
    # tap offset o = switch offset s + kernel tap a, written o = kp * delta + sub
    nd_h, nd_w = -(-(kp_h + kc_h - 1) // kp_h), -(-(kp_w + kc_w - 1) // kp_w)
    e_h = np.zeros((kp_h, kc_h, nd_h, kp_h), np.float32)
    e_w = np.zeros((kp_w, kc_w, nd_w, kp_w), np.float32)
    for s_ in range(kp_h):
        for a in range(kc_h):
            e_h[s_, a, (s_ + a) // kp_h, (s_ + a) % kp_h] = 1.0
    for s_ in range(kp_w):
        for a in range(kc_w):
            e_w[s_, a, (s_ + a) // kp_w, (s_ + a) % kp_w] = 1.0
    method = prog.method
    deriv_nodes = [st for st in chain if st.node.op in NONLINEAR_OPS]
    conv_in, conv_out = conv.inputs[0], tensor_name(conv.node.name)
    w_t = conv.inputs[1]
    pool_save = pool.save[0]

    def cover(x, ho, wo, pt, pl):
        """The pool's covered region [-pt, ho*kh - pt) x [-pl, wo*kw - pl) of a full-res tensor."""
        xs = tf.shape(x)
        x = tf.pad(x, [[0, 0], [pt, tf.maximum(ho - pt - xs[1], 0)],
                       [pl, tf.maximum(wo - pl - xs[2], 0)], [0, 0]])
        return x[:, :ho, :wo]

    def weights(env):
        mask6, geo = pool_save(env)
        x_in, y_conv = env[conv_in], env[conv_out]
        ys = tf.shape(y_conv)
        C = tf.shape(mask6)[3] // kp_w
        n_ho = tf.shape(mask6)[0] // ys[0]
        n_wo = tf.shape(mask6)[2]
        ho, wo = n_ho * kp_h, n_wo * kp_w
        m = tf.reshape(mask6, tf.stack([ys[0], ho, wo, C]))
        if method != "deconvnet":
            for st in deriv_nodes:  # fold f'(x) of every non-linearity (guided, saliency)
                d = st.save[0](env)
                m = m * cover(d, ho, wo, geo[2], geo[3])
        m = tf.reshape(m, tf.stack([ys[0] * n_ho, kp_h, n_wo, kp_w, C]))
        m = tf.reshape(tf.transpose(m, [0, 2, 4, 1, 3]), tf.stack([-1, C, kp_h, kp_w]))
        W = env[w_t]                                             # kh, kw, cin, C
        # the kernel placed at every switch offset: (sy, sx, C, taps), tiny
        wsh = tf.einsum("yadp,xbeq,abic->yxcdepqi", e_h, e_w, W)
        wsh = tf.reshape(wsh, tf.stack([kp_h * kp_w, C, -1]))
        m = tf.reshape(m, tf.stack([-1, C, kp_h * kp_w]))
        B = None
        for k in range(kp_h * kp_w):                             # cells, C, taps
            term = m[:, :, k, None] * wsh[k][None]
            B = term if B is None else B + term
        xs = tf.shape(x_in)
        pc_t, pc_l = _pads(tf, padding, [], xs[1], xs[2], ys[1], ys[2], kc_h, kc_w)
        return B, tf.stack([xs[1], xs[2], geo[2] + pc_t, geo[3] + pc_l])

    ops: list[tuple[str, Callable[[dict], Any] | None]] = []
    for st in chain:  # per-channel operations, applied to the pooled signal in backward order
        op = st.node.op
        if op in BN_OPS:
            ops.append(("scale", st.save[0]))
        elif op in ("Mul", "RealDiv"):
            c_t = st.inputs[1]
            ops.append(("scale" if op == "Mul" else "divide", lambda env, c_t=c_t: env[c_t]))
        elif op in NONLINEAR_OPS and method != "saliency":
            ops.append(("relu", None))
    scale_fns = [f for kind, f in ops if f is not None]

    pool.save = [weights] + scale_fns

    def rule(g, sv, F):
        (B, geo), scales = sv[0], list(sv[1:])
        if isinstance(g, _CellsMajor):         # (N, Ho, Wo, F, C): already cells-major
            t = g.t
            s = tf.shape(t)
            n, ho, wo, nf = s[0], s[1], s[2], s[3]
        else:                                   # (F, N, Ho, Wo, C)
            s = tf.shape(g)
            nf, n, ho, wo = s[0], s[1], s[2], s[3]
            t = tf.transpose(g, [1, 2, 3, 0, 4])
        k = 0
        for kind, _ in ops:
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
        return [_split(tf, dx, F)]

    pool.rule = rule
    pool.fused_target = conv_in
    pool.fused_taps = nd_h * nd_w * kp_h * kp_w * cin
    prog.fused_skipped.update(id(st) for st in chain + [conv])


_RULES: dict[str, Callable[[Program, _Step], None]] = {}
for _op in PASS_OPS:
    _RULES[_op] = _rule_pass
for _op in NONLINEAR_OPS:
    _RULES[_op] = _rule_nonlinear
for _op in ("BiasAdd", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Neg"):
    _RULES[_op] = _rule_arith
for _op in BN_OPS:
    _RULES[_op] = _rule_bn
for _op in CONV_OPS:
    _RULES[_op] = _rule_conv
_RULES.update({
    "MaxPool": _rule_maxpool, "MaxPoolV2": _rule_maxpool, "AvgPool": _rule_avgpool,
    "Reshape": _rule_reshape, "Squeeze": _rule_reshape, "ExpandDims": _rule_reshape,
    "Transpose": _rule_transpose, "Pad": _rule_pad, "PadV2": _rule_pad, "MirrorPad": _rule_pad,
    "ConcatV2": _rule_concat, "StridedSlice": _rule_strided_slice,
    "Max": _rule_reduce, "Min": _rule_reduce, "Mean": _rule_reduce, "Sum": _rule_reduce,
    "MatMul": _rule_matmul,
})
assert not (set(_RULES) & SHAPE_OPS)


# =====================================================================================
# the public call
# =====================================================================================
@dataclass
class DeconvResult:
    """Deconvolved features of one layer for one track.

    Attributes
    ----------
    masks : np.ndarray, float32, shape (n_features, n_frames, n_bands)
        One mask per requested feature, in the model input's domain (time first).
        Deconvnet masks are real-valued and can be negative.
    features : list of int
        The feature indices, in the order of ``masks``.
    dead : np.ndarray, bool, shape (n_features,)
        True where the feature never responds on this track (its mask is all zero).
    activation_max, activation_mean, fraction_active : np.ndarray, shape (n_features,)
        Statistics of each feature's activation map: its maximum, its mean, and the
        fraction of its units that are > 0.
    activations : np.ndarray, float32, shape (n_features, n_units)
        Each feature's activation over time (max over frequency), at the layer's time
        resolution (``layer.stride[0]`` input frames per unit).
    layer : LayerInfo
    method, target, mode : str
        The settings used (``mode`` is ``"whole"`` or ``"patches"``).
    analysis : Analysis
        The track's model input and STFT.
    model : str
        The model's name.
    """

    masks: np.ndarray
    features: list[int]
    dead: np.ndarray
    activation_max: np.ndarray
    activation_mean: np.ndarray
    fraction_active: np.ndarray
    activations: np.ndarray
    layer: LayerInfo
    method: str
    target: str
    mode: str
    analysis: Analysis
    model: str

    def mask(self, feature: int) -> np.ndarray:
        """The mask of one feature index, shape (n_frames, n_bands)."""
        try:
            return self.masks[self.features.index(int(feature))]
        except ValueError:
            raise FeatureIndexError(
                f"feature {feature} was not deconvolved; this result holds {self.features}"
            ) from None


def _chunk_size(layer_bytes: int, memory: int, n: int) -> int:
    return int(max(1, min(n, memory // max(layer_bytes, 1))))


def _patch_starts(n_frames: int, length: int) -> list[int]:
    if n_frames <= length:
        return [0]
    hop = max(1, length // 2)
    n = int(math.ceil((n_frames - length) / hop)) + 1
    return [i * hop for i in range(n)]


def _patch_weights(length: int, margin: int, first: bool, last: bool) -> np.ndarray:
    """Overlap-add weights of a patch: a Hann taper over the centre, zero ``margin`` frames
    from either edge (where the patch saw padding the whole track does not have), full weight
    towards the track's own start and end."""
    w = np.zeros(length, np.float64)
    core = length - 2 * margin
    n = np.arange(core)
    w[margin:length - margin] = 0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / core)
    half = length // 2
    if first:
        w[:half] = np.maximum(w[:half], 1.0)
    if last:
        w[half:] = np.maximum(w[half:], 1.0)
    return w


def deconvolve(
    model: FrozenModel,
    audio: np.ndarray | None = None,
    sr: float | None = None,
    *,
    layer: str | int,
    features: Any = None,
    method: str = "deconvnet",
    target: str = "map",
    mode: str = "auto",
    analysis: Analysis | None = None,
    memory: int = DEFAULT_MEMORY,
    progress: Callable[[int, int], None] | bool = False,
    precision: str = "float32",
) -> DeconvResult:
    """Deconvolve features of one layer back into the model's input spectrogram.

    Parameters
    ----------
    model : FrozenModel
        From :func:`mirdeconv.load_model`.
    audio : np.ndarray, shape (n_samples,)
        Mono track (any sample rate; resampled to the model's).
    sr : float
        Sample rate of ``audio`` in Hz.
    layer : str or int
        A feature layer's name (see ``model.layers``) or position.
    features : None, int, list of int, or str
        Which feature maps (``None``/``"all"``: every one; ``"0-7,12"``).
    method : {"deconvnet", "guided", "saliency"}
        Backward rule at the non-linearities (see the module's documentation).
    target : {"map", "max"}
        Seed the backward pass with the whole feature map (Zeiler & Fergus, Choi;
        the default) or only with its strongest unit over the track.
    mode : {"auto", "whole", "patches"}
        ``"whole"``: the whole track through the graph at once (only when the graph up to
        the layer is fully convolutional along time); ``"patches"``: patches of the
        model's input length, 50 % overlap, overlap-added; ``"auto"``: whole when possible.
    analysis : Analysis, optional
        A precomputed ``model.representation.analyse(audio, sr)`` (then ``audio`` is unused).
    memory : int
        Bytes the backward pass of one chunk of features may use.
    progress : bool or callable
        True for a tqdm bar, or ``callable(done, total)`` called after every chunk.
    precision : {"float32", "bfloat16"}
        Arithmetic of the backward pass (bfloat16: about 2x faster convolutions on CPUs
        with AMX/AVX-512-BF16, relative error of the masks around 1e-2).

    Returns
    -------
    DeconvResult
        ``masks`` has shape ``(n_features, n_frames, n_bands)``.

    Raises
    ------
    UnknownLayerError, FeatureIndexError, InvalidOptionError
        Bad layer, feature index, method, target or mode.
    AudioError
        Unusable audio (silent, NaN, too short for the layer's receptive field, ...).
    """
    _check_choice("method", method, METHODS)
    _check_choice("target", target, TARGETS)
    _check_choice("mode", mode, MODES)
    _check_choice("precision", precision, PRECISIONS)
    info = model.layer(layer)
    feats = parse_features(features, info.n_features)
    if analysis is None:
        if audio is None or sr is None:
            raise InvalidOptionError("give audio and sr, or a precomputed analysis")
        analysis = model.representation.analyse(audio, sr)
    spf = model.representation.seconds_per_frame
    n_frames = analysis.n_frames
    rf = info.receptive_field[0]
    if n_frames < rf:
        raise AudioTooShortError(
            f"the audio is {analysis.duration:.2f} s ({n_frames} frames) long, shorter than the "
            f"receptive field of layer {info.name} ({rf} frames = {rf * spf:.2f} s)"
        )
    if mode == "whole" and not info.time_agnostic:
        raise InvalidOptionError(
            f"layer {info.name} cannot take a whole track at once (the graph before it is not "
            "fully convolutional along time); use mode='patches' or 'auto'"
        )
    if mode == "whole" and model.standardize_patches:
        raise InvalidOptionError(f"{model.name} standardises every input patch; use patches")
    whole = ((info.time_agnostic and mode != "patches" and not model.standardize_patches)
             or model.input_length is None)
    x, starts, L = _model_input(model, analysis.features, whole)
    prog = model.program(info, method, precision)
    act, saved, elems = prog.forward(x)
    amax, amean, frac, activ = _activation_stats(act.numpy(), info, feats, starts, L)
    dead = (amax == 0) & (amean == 0)

    # per feature: the gradients on the way, and about two temporaries each
    width = 2 if precision == "bfloat16" else 4
    chunk = _chunk_size(width * 3 * elems * len(starts), memory, len(feats))
    n_bands = analysis.features.shape[1]
    # frequency-first models fill a (F, bands, frames) buffer without transposing it; the
    # result is its (F, frames, bands) view (auralisation reads it back frequency-first)
    native_ft = whole and model.input_axes.startswith("NFT")
    buf = np.zeros((len(feats), n_bands, n_frames) if native_ft else (len(feats), n_frames, n_bands),
                   np.float32)
    masks = np.swapaxes(buf, 1, 2) if native_ft else buf
    margin = min(rf, L // 4)
    weights = [_patch_weights(L, margin, i == 0, i == len(starts) - 1) for i in range(len(starts))]
    norm = np.zeros(starts[-1] + L)
    for s, w in zip(starts, weights):
        norm[s:s + L] += w
    bar = _progress_bar(progress, len(feats), f"{info.name} ({method})")
    # equal chunks (the last one padded with repeats) keep to one traced backward function
    n_chunks = -(-len(feats) // chunk)
    chunk = -(-len(feats) // n_chunks)
    try:
        for c0 in range(0, len(feats), chunk):
            sel = feats[c0:c0 + chunk]
            padded = sel + [sel[-1]] * (chunk - len(sel)) if n_chunks > 1 else sel
            raw = prog.backward(act, saved, padded, target)[:len(sel)]    # (F, N, *input)
            g = model.from_input(raw)                                     # (F, N, L, B)
            if native_ft:
                buf[c0:c0 + len(sel)] = raw[:, 0, ..., 0] if raw.ndim == 5 else raw[:, 0]
            elif whole:
                masks[c0:c0 + len(sel)] = g[:, 0, :n_frames]
            else:
                acc = np.zeros((len(sel), starts[-1] + L, g.shape[-1]), np.float64)
                for i, (s, w) in enumerate(zip(starts, weights)):
                    if target == "max":  # one unit, in one patch: place it unweighted
                        acc[:, s:s + L] += g[:, i]
                    else:
                        acc[:, s:s + L] += g[:, i] * w[None, :, None]
                if target != "max":
                    acc /= norm[None, :, None]
                masks[c0:c0 + len(sel)] = acc[:, :n_frames]
            if bar is not None:
                bar(len(sel))
    finally:
        if bar is not None:
            bar(None)
    masks[dead] = 0.0
    return DeconvResult(
        masks=masks, features=feats, dead=dead, activation_max=amax, activation_mean=amean,
        fraction_active=frac,
        activations=activ, layer=info, method=method, target=target,
        mode="whole" if whole else "patches", analysis=analysis, model=model.name,
    )


def _model_input(model: FrozenModel, frames: np.ndarray, whole: bool
                 ) -> tuple[np.ndarray, list[int], int]:
    """The model input for a track: one item (whole) or patches of the model's length, the
    last padded with the track's minimum (silence in any compression).

    Returns
    -------
    x : np.ndarray, shape (n_items, *input_shape[1:])
    starts : list of int
        First frame of every item.
    length : int
        Frames per item.
    """
    n_frames = frames.shape[0]
    if whole:
        return model.to_input(frames[None]), [0], n_frames
    length = model.input_length or n_frames
    starts = _patch_starts(n_frames, length)
    total = starts[-1] + length
    pad = np.full((total - n_frames, frames.shape[1]), frames.min(), np.float32)
    padded = np.concatenate([frames, pad]) if len(pad) else frames
    patches = np.stack([padded[s:s + length] for s in starts])
    if model.standardize_patches:  # as Essentia's TensorNormalize (standard, per patch)
        mean = patches.mean(axis=(1, 2), keepdims=True)
        std = patches.std(axis=(1, 2), keepdims=True)
        patches = np.where(std > 0, (patches - mean) / np.where(std > 0, std, 1), patches)
    return model.to_input(patches.astype(np.float32)), starts, length


def _activation_stats(act: np.ndarray, info: LayerInfo, feats: list[int], starts: list[int],
                      length: int) -> tuple[np.ndarray, ...]:
    """Max, mean, fraction > 0, and activation over time (max over all other axes) per feature."""
    a = np.moveaxis(np.take(act, feats, axis=info.feature_axis), info.feature_axis, 0)
    flat = a.reshape(len(feats), -1)
    per_t = np.moveaxis(a, info.time_axis + (info.time_axis < info.feature_axis), 2)
    per_t = per_t.reshape(len(feats), per_t.shape[1], per_t.shape[2], -1).max(axis=3)  # F, N, T
    if len(starts) == 1:
        over_time = per_t[:, 0]
    else:
        over_time = _ola_units(np.moveaxis(per_t, 0, -1), starts, length, info.stride[0])
    return (flat.max(axis=1).astype(np.float32), flat.mean(axis=1).astype(np.float32),
            (flat > 0).mean(axis=1).astype(np.float32), over_time.astype(np.float32))


def _ola_units(per_t: np.ndarray, starts: list[int], L: int, stride: int) -> np.ndarray:
    """Activation over time from patches (N, units, F): later patches overwrite the overlap."""
    n_units = per_t.shape[1]
    total = (starts[-1] + L) // max(stride, 1) + n_units
    out = np.zeros((per_t.shape[2], total), np.float32)
    for s, p in zip(starts, per_t):
        u0 = s // max(stride, 1)
        out[:, u0:u0 + n_units] = p.T
    last = starts[-1] // max(stride, 1) + n_units
    return out[:, :last]


def _progress_bar(progress: Any, total: int, desc: str) -> Callable[[int | None], None] | None:
    if not progress:
        return None
    if callable(progress):
        done = [0]

        def cb(n: int | None) -> None:
            if n is not None:
                done[0] += n
                progress(done[0], total)

        return cb
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="feature")

    def tq(n: int | None) -> None:
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return tq

