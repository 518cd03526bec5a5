"""The program: one graph cut (input -> layer) compiled into backward steps, run forward once
and backward in chunks of features.

For one layer and a list of its features the program

1. runs the forward pass ONCE (batch = 1 whole track, or the track's patches), recording
   what the backward pass needs: max-pool switches, the derivatives of the non-linearities,
   the kernels;
2. seeds the backward pass, for every feature of a chunk at once, with the feature's own
   activation map (``target="map"``) or only its strongest unit (``target="max"``);
3. walks the graph back to the input with one rule per operation (:mod:`.table`), batched
   over the features, taking the fast paths of :mod:`.fused` where they apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import backend
from ..errors import InvalidOptionError, UnsupportedGraphError, message_of
from ..graph import FrozenGraph, node_name, tensor_name
from ..graph.operations import COMPOSITE, Kind, operation
from ..graph.patterns import Composite, composite_activations, normalization_statistics
from ..options import METHODS, PRECISIONS, Method
from . import rules  # noqa: F401  (fills the rule table)
from .fused import compact_chain, fuse_first_layer
from .graphrun import import_forward
from .seeds import seed, select
from .step import Context, Step, dense
from .table import family_rule, rule_for

__all__ = ["Program"]


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
    method : str or Method
        A row of :data:`mirdeconv.options.METHODS`.
    precision : {"float32", "bfloat16"}
        Arithmetic of the backward pass; the forward pass (switches, activations) always runs
        in float32.
    label : str, optional
        The layer's name for people (errors name it); default: ``layer_tensor``.

    Raises
    ------
    UnsupportedGraphError
        At compilation or when a step fails: the operation, its node and the layer named,
        TensorFlow's own error chained.
    """

    def __init__(self, graph: FrozenGraph, input_tensor: str, layer_tensor: str,
                 feature_axis: int, method: str | Method, precision: str,
                 label: str | None = None) -> None:
        self.tf = tf = backend.tensorflow()
        self.graph = graph
        self.label = label or layer_tensor
        if not isinstance(method, Method) and method not in METHODS:
            raise InvalidOptionError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        self.method = method if isinstance(method, Method) else METHODS[method]
        if precision not in PRECISIONS:
            raise InvalidOptionError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        self.precision = precision
        self.input = tensor_name(input_tensor)
        self.layer = tensor_name(layer_tensor)
        self.feature_axis = feature_axis
        order = graph.ancestors([self.layer])
        if node_name(self.input) not in order:
            raise UnsupportedGraphError(f"layer {self.layer} does not depend on the input {self.input}")
        var = graph.depends_on(order, self.input)
        var = graph.depends_on(order, self.input, normalization_statistics(graph, order, var))
        composites = {c.sink: c for c in composite_activations(graph, order, var, {self.layer})}
        inside = {n for c in composites.values() for n in c.nodes} - set(composites)
        pools, nonlinear = _rectify_pairs(graph, order, var, self.layer, self.method)
        try:
            shapes = graph.static_shapes([self.layer], self.input, None)
        except (ValueError, tf.errors.InvalidArgumentError):
            shapes = {}
        ctx = Context(tf, graph, self.method, nonlinear, pools, shapes)
        self.steps = [self._compile(ctx, name, var, composites.get(name)) for name in order
                      if name in var and name != node_name(self.input) and name not in inside]
        self._position = {id(st): k for k, st in enumerate(self.steps)}
        self.compact = compact_chain(ctx, self.steps, self.layer, feature_axis)
        in_compact = {id(st) for st in self.compact or []}
        self.fused_skipped: set[int] = set()
        for st in self.steps:
            if id(st) not in in_compact:
                self.fused_skipped.update(id(s) for s in fuse_first_layer(ctx, self.steps, st))
        fetch = ({t for s in self.steps for t in s.inputs} | {t for s in self.steps for t in s.outputs}
                 | {self.layer})
        self._fetch = sorted(t for t in fetch if node_name(t) != node_name(self.input))
        self._graph_def = graph.subgraph_def([self.layer])
        self._forward_fn: Any = None
        self._backward_fn = tf.function(self._backward, reduce_retracing=True, autograph=False)
        self._seeded_fn: Any = None
        self._to_fns: dict[str, Any] = {}

    def _compile(self, ctx: Context, name: str, var: set[str], composite: Composite | None) -> Step:
        node = ctx.graph.nodes[name]
        if composite is not None:     # several operations that are one non-linearity
            step = Step(node, [0], [composite.source])
            rule = family_rule(COMPOSITE)
        else:
            inputs = ctx.graph.data_inputs(node)
            step = Step(node, [i for i, t in enumerate(inputs) if node_name(t) in var], inputs)
            rule = rule_for(node.op)
        try:
            rule(ctx, step)
        except UnsupportedGraphError as exc:
            raise UnsupportedGraphError(f"{exc} (on the way down from layer {self.label})") from exc
        except Exception as exc:  # noqa: BLE001 - a rule meeting a graph it does not expect
            raise self._failed(step, exc) from exc
        return step

    # -- forward ----------------------------------------------------------------------
    def _elements(self, env: dict, x: Any) -> tuple[Any, Any]:
        """Per batch item: the gradient values one feature's backward pass holds, and the
        values of every tensor the forward pass makes between the input and the layer (an
        upper bound of what it holds at once; those the fused paths skip included)."""
        tf = self.tf
        n = tf.maximum(tf.cast(tf.shape(x)[0], tf.int64), 1)
        compact = {id(st) for st in (self.compact or [])}
        sizes, made = [tf.size(x, tf.int64)], [tf.size(x, tf.int64)]
        for s in self.steps:
            y = env[s.output]
            out_size = tf.size(y, tf.int64)
            made.append(out_size * (1 + s.fused_made))
            if id(s) in self.fused_skipped:
                continue
            if id(s) in compact:  # one channel per feature
                out_size //= tf.cast(tf.shape(y)[-1], tf.int64)
            sizes.append(out_size)
            if s.fused_target is not None:  # per pooled cell: the taps of every channel
                sizes.append(out_size // tf.cast(tf.shape(y)[-1], tf.int64) * s.fused_taps)
        return tf.add_n(sizes) // n, tf.add_n(made) // n

    def _build_forward(self, rank: int) -> Any:
        tf = self.tf
        kernels = self.graph.conv_kernels(self._graph_def)

        def fwd(x: Any) -> tuple:
            fed = {k: tf.identity(v) for k, v in kernels.items()}
            outs = import_forward(tf, self.graph, self._graph_def, {**fed, self.input: x},
                                  self._fetch, "m")
            env = dict(zip(self._fetch, outs))
            env[self.input] = x
            saved = [[f(env) for f in s.save] for s in self.steps]
            return env[self.layer], saved, *self._elements(env, x)

        return tf.compat.v1.wrap_function(fwd, [tf.TensorSpec([None] * rank, tf.float32)])

    def forward(self, x: np.ndarray) -> tuple[Any, Any, int, int]:
        """Run the forward pass once.

        Parameters
        ----------
        x : np.ndarray, float32, shape (n_items, *input_shape[1:])

        Returns
        -------
        activations : tf.Tensor
            The layer's output.
        saved : nested list of tf.Tensor
            What the backward pass needs.
        elems : int
            Elements of all tensors between the input and the layer, per batch item: a bound
            on what the backward pass holds per feature.
        made : int
            Elements of every tensor the forward pass makes, per batch item: a bound on what
            it holds at once besides what it saves.

        Raises
        ------
        UnsupportedGraphError
            The graph cannot run on an input of this shape.
        """
        if self._forward_fn is None:
            self._forward_fn = self._build_forward(np.ndim(x))
        self._input_shape = tuple(np.shape(x))
        try:
            act, saved, elems, made = self._forward_fn(self.tf.constant(x, self.tf.float32))
            return act, saved, int(elems), int(made)
        except self.tf.errors.InvalidArgumentError as exc:
            raise UnsupportedGraphError(
                f"the graph cannot run on an input of shape {tuple(np.shape(x))} up to layer "
                f"{self.label}: {message_of(exc)}") from exc

    # -- backward ---------------------------------------------------------------------
    def _low(self, *tensors: Any) -> Any:
        """``tensors`` (nested) in the backward pass's precision."""
        tf = self.tf
        if self.precision != "bfloat16":
            return tensors

        def low(t: Any) -> Any:
            return tf.cast(t, tf.bfloat16) if t.dtype == tf.float32 else t

        return tf.nest.map_structure(low, tensors)

    def _backward(self, act: Any, saved: Any, feats: Any, target_max: Any) -> Any:
        tf = self.tf
        act, saved = self._low(act, saved)
        if self.compact:
            saved_of = {id(st): sv for st, sv in zip(self.steps, saved)}
            g = select(tf, act, feats, 3, target_max)              # (F, N, H, W)
            for st in self.compact:
                with self._named(st):
                    g = st.compact_rule(g, saved_of[id(st)], feats)
            grads = {self.compact[-1].inputs[0]: g}
            skip = {id(st) for st in self.compact}
        else:
            grads = {self.layer: seed(tf, act, feats, self.feature_axis, target_max)}
            skip = set()
        return self._walk(grads, saved, tf.shape(feats)[0], skip)

    def _seeded(self, saved: Any, g: Any) -> Any:
        saved, g = self._low(saved, g)
        return self._walk({self.layer: g}, saved, self.tf.shape(g)[0], set())

    def _to(self, saved: Any, g: Any, stop: str) -> Any:
        return self._walk({self.layer: g}, saved, self.tf.shape(g)[0], set(), stop)

    def _walk(self, grads: dict, saved: Any, F: Any, skip: set, stop: str | None = None) -> Any:
        """Every step's rule from the layer down to the input (those in ``skip`` done), or
        down to the tensor ``stop`` (its signal returned, (F, *its shape))."""
        tf = self.tf
        for step, sv in zip(reversed(self.steps), reversed(saved)):
            if stop is not None and stop in step.outputs:
                g = grads.get(stop)
                return None if g is None else tf.cast(dense(g), tf.float32)
            if id(step) in skip:
                continue
            if step.n_outputs > 1:       # a signal per output (None for those with none)
                g = [grads.pop(t, None) for t in step.outputs]
                g = [dense(x) if x is not None else None for x in g] if any(
                    x is not None for x in g) else None
            else:
                g = grads.pop(step.output, None)
            if g is not None:
                with self._named(step):
                    _accumulate(grads, step, g, sv, F)
        g = grads.get(self.input)
        if g is None:  # no gradient path (StopGradient)
            return None
        return tf.cast(dense(g), tf.float32)

    def backward_seeded(self, saved: Any, seed_map: np.ndarray) -> np.ndarray:
        """The backward pass of one seed that holds a different feature in each item (the
        strongest unit of a feature per window of a track, :mod:`.windows`).

        Parameters
        ----------
        saved : nested list of tf.Tensor
            From :meth:`forward` on the items.
        seed_map : np.ndarray, float32, the layer's output shape
            The seed of every item (all channels).

        Returns
        -------
        np.ndarray, float32, shape (n_items, *input_shape[1:])
        """
        return self.backward_seeds(saved, np.asarray(seed_map, np.float32)[None])[0]

    def backward_seeds(self, saved: Any, seeds: np.ndarray) -> np.ndarray:
        """Backward passes of several seeds at once (a model output's classes, say).

        Parameters
        ----------
        saved : nested list of tf.Tensor
            From :meth:`forward` on the items.
        seeds : np.ndarray, float32, shape (n_seeds, *layer_output_shape)
            Each seed holds a value for every unit of every item.

        Returns
        -------
        np.ndarray, float32, shape (n_seeds, n_items, *input_shape[1:]), read-only
        """
        tf = self.tf
        if self._seeded_fn is None:
            self._seeded_fn = tf.function(self._seeded, reduce_retracing=True, autograph=False)
        out = self._run(self._seeded_fn, saved, tf.constant(seeds, tf.float32))
        if out is None:
            return np.zeros((len(seeds), *self._input_shape), np.float32)
        return np.asarray(out)

    def backward_to(self, saved: Any, seeds: np.ndarray, tensor: str) -> np.ndarray:
        """:meth:`backward_seeds` that stops at a tensor between the input and the layer.

        Returns
        -------
        np.ndarray, float32, shape (n_seeds, n_items, *tensor_shape[1:]), read-only

        Raises
        ------
        UnsupportedGraphError
            No backward signal reaches ``tensor`` (it does not lie between them, or inside the
            fused first layer).
        """
        tf = self.tf
        tensor, outputs = tensor_name(tensor), {t for st in self.steps for t in st.outputs}
        node = self.graph.nodes.get(node_name(tensor))
        while tensor not in outputs and node is not None and operation(node.op).alias:
            tensor = tensor_name(self.graph.data_inputs(node)[0])    # an alias of a tensor
            node = self.graph.nodes.get(node_name(tensor))
        if tensor not in outputs:
            raise UnsupportedGraphError(f"{tensor} does not lie between the input and {self.layer}")
        if any(tensor in st.outputs and id(st) in self.fused_skipped for st in self.steps):
            raise UnsupportedGraphError(
                f"{tensor} lies inside the first layer, which the engine folds into the pool "
                "above it: no gradient is computed there; take a later layer")
        if tensor not in self._to_fns:
            self._to_fns[tensor] = tf.function(lambda sv, g: self._to(sv, g, tensor),
                                               reduce_retracing=True, autograph=False)
        out = self._run(self._to_fns[tensor], saved, tf.constant(seeds, tf.float32))
        if out is None:
            raise UnsupportedGraphError(f"no gradient reaches {tensor} from {self.layer}")
        return np.asarray(out)

    def backward(self, act: Any, saved: Any, features: Sequence[int], target: str) -> np.ndarray:
        """Deconvolve one chunk of features.

        Returns
        -------
        np.ndarray, float32, shape (n_features, n_items, *input_shape[1:]), read-only
        """
        tf = self.tf
        feats = tf.constant(np.asarray(features, np.int32))
        out = self._run(self._backward_fn, act, saved, feats, tf.constant(target == "max"))
        if out is None:
            return np.zeros((len(features), *self._input_shape), np.float32)
        return np.asarray(out)                  # read-only, without the copy .numpy() makes


    # -- failures, named --------------------------------------------------------------
    @contextmanager
    def _named(self, step: Step) -> Iterator[None]:
        """Trace a step's rule under a name scope that tells it apart in TensorFlow's errors;
        a rule that fails while it is traced is named at once."""
        with self.tf.name_scope(f"{_SCOPE}{self._position[id(step)]}"):
            try:
                yield
            except UnsupportedGraphError:
                raise
            except Exception as exc:  # noqa: BLE001 - TensorFlow's and the rules' own errors
                failure = self._failed(step, exc)
                failure.original = exc        # tf.function re-raises without the chain
                raise failure from exc

    def _failed(self, step: Step | None, exc: BaseException) -> UnsupportedGraphError:
        where = (f"the backward rule of {step.op} (node {step.node.name})" if step is not None
                 else "the backward pass")
        return UnsupportedGraphError(
            f"{where} failed on the way down from layer {self.label}: {message_of(exc)}")

    def _run(self, fn: Any, *args: Any) -> Any:
        """Run a compiled backward function; a TensorFlow error names the step it came from."""
        try:
            return fn(*args)
        except UnsupportedGraphError as failure:       # failed while traced
            raise failure from getattr(failure, "original", None)
        except self.tf.errors.OpError as exc:
            found = re.search(rf"\b{_SCOPE}(\d+)/", str(exc))
            step = self.steps[int(found.group(1))] if found else None
            raise self._failed(step, exc) from exc


#: The name scope of each step's rule in the compiled backward functions.
_SCOPE = "mirdeconv_rule_"


def _accumulate(grads: dict, step: Step, g: Any, sv: Any, F: Any) -> None:
    """Run one step's rule and add its gradients to those of its inputs."""
    if step.fused_target is not None:
        targets = [step.fused_target]
        gins = step.rule(g, sv, F)
    else:
        targets = [step.inputs[k] for k in step.var_inputs]
        gins = step.rule(g if step.n_outputs > 1 else dense(g), sv, F)
    for t, gi in zip(targets, gins):
        if gi is not None:
            grads[t] = dense(grads[t]) + gi if t in grads else gi


def _rectify_pairs(graph: FrozenGraph, order: list[str], var: set[str], layer: str,
                   method: Method) -> tuple[frozenset[str], frozenset[str]]:
    """Max-pools fed only by a rectifying non-linearity: with a rectifying method,
    relu(unpool(g)) == unpool(relu(g)), so the pool's rule rectifies the pooled-size signal
    (4x fewer values for 2x2 pools) and the non-linearity skips it.

    Returns
    -------
    (pools that rectify, non-linearities they rectify for)
    """
    if not method.rectify:
        return frozenset(), frozenset()
    consumers: dict[str, list[str]] = {}
    for name in order:
        for t in graph.data_inputs(graph.nodes[name]):
            consumers.setdefault(node_name(t), []).append(name)
    pools, nonlinear = set(), set()
    for name in order:
        node = graph.nodes[name]
        if operation(node.op).kind is not Kind.MAX_POOL or name not in var:
            continue
        src = node_name(node.input[0])
        if (operation(graph.nodes[src].op).kind is Kind.NONLINEAR and consumers.get(src) == [name]
                and tensor_name(src) != layer):
            pools.add(name)
            nonlinear.add(src)
    return frozenset(pools), frozenset(nonlinear)
