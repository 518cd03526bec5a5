"""Running a frozen graph forward, with faster convolutions where TensorFlow's are slow.

A convolution strided along the height from few channels with a one-column kernel (a
waveform net's first layer: CREPE's 512 samples every 4 from one channel) runs in oneDNN at
a tenth of the machine's throughput.  The same convolution over the input's rows grouped
``stride`` at a time (space to depth: ``stride x cin`` channels, stride 1, the kernel's taps
regrouped the same way) computes the same sums in the same order (bit-equal here) 7x
faster.  :func:`import_forward` imports a graph with such convolutions replaced by their
regrouped form; every other tensor keeps its name, so a program's steps find what they
saved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph import FrozenGraph, node_name, tensor_name
from ..graph.operations import Kind, operation

__all__ = ["import_forward", "regrouped_convs", "regrouped_conv"]

#: Input channels up to which a strided convolution is regrouped.
MAX_CHANNELS = 4


def regrouped_convs(graph: FrozenGraph, graph_def: Any) -> dict[str, tuple]:
    """The convolutions of ``graph_def`` that :func:`import_forward` regroups: node name ->
    (input tensor, kernel (kh, 1, cin, C), stride, padding)."""
    out = {}
    for node in graph_def.node:
        if operation(node.op).kind is not Kind.CONVOLUTION or len(node.input) < 2:
            continue
        strides = list(graph.attr(node, "strides") or [1, 1, 1, 1])
        dil = list(graph.attr(node, "dilations") or [1, 1, 1, 1])
        w = graph.const_value(tensor_name(node.input[1]))
        if (w is None or w.shape[1] != 1 or w.shape[2] > MAX_CHANNELS or strides[1] <= 1
                or strides[2] != 1 or dil != [1, 1, 1, 1]
                or (graph.attr(node, "data_format") or "NHWC") != "NHWC"
                or graph.attr(node, "padding") not in ("SAME", "VALID")):
            continue
        out[node.name] = (tensor_name(node.input[0]), np.asarray(w, np.float32), int(strides[1]),
                          graph.attr(node, "padding"))
    return out


def regrouped_conv(tf: Any, x: Any, w: np.ndarray, stride: int, padding: str) -> Any:
    """``conv2d(x, w, strides=(stride, 1), padding)`` as a stride-1 convolution over the rows
    of ``x`` grouped ``stride`` at a time.

    Parameters
    ----------
    x : tf.Tensor, shape (N, H, W, cin)
    w : np.ndarray, shape (kh, 1, cin, C)

    Returns
    -------
    tf.Tensor, shape (N, Ho, W, C)
    """
    kh, _, cin, C = w.shape
    jh = -(-kh // stride)
    k = np.zeros((jh * stride, 1, cin, C), np.float32)
    k[:kh] = w
    k = k.reshape(jh, stride, 1, cin, C).transpose(0, 2, 1, 3, 4).reshape(jh, 1, stride * cin, C)
    s = tf.shape(x)
    H = s[1]
    if padding == "SAME":
        Ho = (H + stride - 1) // stride
        pt = tf.maximum((Ho - 1) * stride + kh - H, 0) // 2
    else:
        Ho = (H - kh) // stride + 1
        pt = 0
    rows = (Ho + jh - 1) * stride                        # rows the regrouped conv reads
    x = tf.pad(x, [[0, 0], [pt, tf.maximum(rows - H - pt, 0)], [0, 0], [0, 0]])[:, :rows]
    x = tf.reshape(x, tf.stack([s[0], rows // stride, stride, s[2], cin]))
    x = tf.reshape(tf.transpose(x, [0, 1, 3, 2, 4]), tf.stack([s[0], rows // stride, s[2], stride * cin]))
    return tf.nn.conv2d(x, tf.identity(tf.constant(k)), 1, "VALID")  # (no cached Const kernel)


def import_forward(tf: Any, graph: FrozenGraph, graph_def: Any, input_map: dict,
                   return_elements: list[str], name: str) -> list:
    """``tf.graph_util.import_graph_def`` of ``graph_def``, its slow strided convolutions
    regrouped (:func:`regrouped_convs`): the graph is imported once to reach their inputs,
    then again with their outputs mapped to the regrouped ones (what the second import does
    not use is pruned when the function runs)."""
    convs = regrouped_convs(graph, graph_def)
    if not convs:
        return tf.graph_util.import_graph_def(graph_def, input_map=input_map,
                                              return_elements=return_elements, name=name)
    ins = [x for x, _, _, _ in convs.values()]
    xs = tf.graph_util.import_graph_def(graph_def, input_map=input_map, return_elements=ins,
                                        name=name + "_in")
    fast = {f"{n}:0": regrouped_conv(tf, x, w, s, p)
            for (n, (_, w, s, p)), x in zip(convs.items(), xs)}
    kept = [t for t in return_elements if node_name(t) not in convs]
    outs = tf.graph_util.import_graph_def(graph_def, input_map={**input_map, **fast},
                                          return_elements=kept, name=name)
    got = dict(zip(kept, outs))
    got.update({t: fast[tensor_name(t)] for t in return_elements if node_name(t) in convs})
    return [got[t] for t in return_elements]
