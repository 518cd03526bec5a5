"""The forward pass of a model's frozen graph, as the engine runs it (for predictions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..errors import ModelLoadError
from ..graph import node_name, tensor_name
from ..model import FrozenModel
from .cache import graph_function
from .graphrun import import_forward

__all__ = ["run_graph"]


def run_graph(model: FrozenModel, x: np.ndarray, output: str | None = None) -> np.ndarray:
    """Run the frozen graph from its input to ``output`` (TensorFlow, as the engine sees it).

    Parameters
    ----------
    model : FrozenModel
    x : np.ndarray, shape (n_items, *input_shape[1:])
        Model input, e.g. from :func:`mirdeconv.engine.model_input`.
    output : str, optional
        Output tensor (default: the model's output).

    Returns
    -------
    np.ndarray
        The output for every item.

    Raises
    ------
    ModelLoadError
        The graph has no such output.
    """
    out = tensor_name(output or model.output_tensor or "")
    if node_name(out) not in model.graph.nodes:
        raise ModelLoadError(f"{model.name}: no output tensor {out!r} to predict with")
    fn = graph_function(model, out, lambda: _build(model, out))
    tf = backend.tensorflow()
    return fn(tf.constant(np.asarray(x, np.float32))).numpy()


def _build(model: FrozenModel, out: str) -> Any:
    """The wrapped function; it must not hold the model (the cache holds it by a weak key)."""
    tf = backend.tensorflow()
    gd = model.graph.subgraph_def([out])
    kernels = model.graph.conv_kernels(gd)
    input_tensor, graph = model.input_tensor, model.graph

    def fn(inp: Any) -> Any:
        fed = {k: tf.identity(v) for k, v in kernels.items()}
        return import_forward(tf, graph, gd, {**fed, input_tensor: inp}, [out], "p")[0]

    spec = tf.TensorSpec([None] * len(model.nominal_input_shape()), tf.float32)
    return tf.compat.v1.wrap_function(fn, [spec])
