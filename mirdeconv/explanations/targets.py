"""What an explanation is of: a model output (logit or probability) and its classes.

A tagger ends in a sigmoid (or a softmax) over its classes.  ``output="probability"``
explains that tensor; ``output="logit"`` the tensor the squashing function takes (the
dense layer's output), whose gradients do not vanish when the model is sure.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidOptionError, UnsupportedGraphError, renamed
from ..graph import node_name
from ..graph.operations import ALIAS_OPS, SIGMOID, SOFTMAX
from ..model import FrozenModel

__all__ = ["OUTPUTS", "SQUASHING_OPS", "ExplainedOutput", "explained_output", "tag_indices"]

#: The old names, deprecated (one release): ``OutputTarget`` is :class:`ExplainedOutput`,
#: ``output_target`` is :func:`explained_output`.
RENAMED = {"OutputTarget": "ExplainedOutput", "output_target": "explained_output"}

#: Which tensor of a class output is explained.
OUTPUTS: dict[str, str] = {
    "logit": "the input of the output's sigmoid or softmax (the dense layer's output)",
    "probability": "the model's output itself (after its sigmoid or softmax)",
}

#: Operations that squash logits into probabilities.
SQUASHING_OPS = (SIGMOID, SOFTMAX)


@dataclass(frozen=True)
class ExplainedOutput:
    """The explained output of a model (formerly ``OutputTarget``; ``target`` means only
    :func:`mirdeconv.deconvolve`'s seed): the explained tensor ``tensor`` (``'node:0'``,
    shape (N, n_classes)), its
    ``output`` kind, the model's ``probability`` tensor (for the figures people read) and the
    operation that ``squash``-es logits into it (``""``: none)."""

    tensor: str
    output: str
    probability: str
    n_classes: int
    squash: str


def explained_output(model: FrozenModel, output: str) -> ExplainedOutput:
    """The tensor ``output`` (``"logit"`` or ``"probability"``) of a class model.

    Raises
    ------
    InvalidOptionError
        An unknown ``output``; ``"logit"`` when the output is no sigmoid or softmax.
    UnsupportedGraphError
        The model names no output tensor, or it is not (batch, classes).
    """
    if output not in OUTPUTS:
        raise InvalidOptionError(f"output must be one of {', '.join(OUTPUTS)}; got {output!r}")
    if not model.output_tensor:
        raise UnsupportedGraphError(f"{model.name} names no output tensor to explain")
    prob = model.output_tensor if ":" in model.output_tensor else model.output_tensor + ":0"
    node = model.graph.nodes.get(node_name(prob))
    if node is None:
        raise UnsupportedGraphError(f"{model.name}: output {prob} is not in its graph")
    shape = model.graph.static_shapes([prob], model.input_tensor, None).get(prob)
    if shape is None or len(shape) != 2 or shape[1] is None:
        raise UnsupportedGraphError(
            f"{model.name}: output {prob} has shape {shape}; explanations need (batch, classes)")
    while node.op in ALIAS_OPS:         # Identity, Snapshot: a frozen Keras model's output names
        node = model.graph.nodes[node_name(model.graph.data_inputs(node)[0])]
    tensor = prob
    if output == "logit":
        if node.op not in SQUASHING_OPS:
            raise InvalidOptionError(
                f"{model.name}'s output {prob} is a {node.op}, not a sigmoid or softmax: it has "
                "no logits; use output='probability'")
        tensor = model.graph.data_inputs(node)[0]
    squash = node.op if node.op in SQUASHING_OPS else ""
    return ExplainedOutput(tensor, output, prob, int(shape[1]), squash)


def tag_indices(model: FrozenModel, tags: str | int | Sequence[str | int], n_classes: int
                ) -> list[int]:
    """Class indices of ``tags``: labels (case-insensitive) or indices.

    Raises
    ------
    InvalidOptionError
        A label the model does not have (the closest ones named), an index out of range, or
        no tag at all.
    """
    items = [tags] if isinstance(tags, (str, int, np.integer)) else list(tags)
    if not items:
        raise InvalidOptionError("give at least one tag to explain")
    labels = list(model.labels or [])
    lower = {lab.lower(): i for i, lab in enumerate(labels)}
    out = []
    for t in items:
        if isinstance(t, bool) or not isinstance(t, (str, int, np.integer)):
            raise InvalidOptionError(f"a tag is a label or a class index; got {t!r}")
        if isinstance(t, str) and t.strip().lower() in lower:
            out.append(lower[t.strip().lower()])
        elif isinstance(t, (int, np.integer)) or t.strip().isdigit():
            i = int(t)
            if not 0 <= i < n_classes:
                raise InvalidOptionError(
                    f"tag index {i} is out of range: {model.name} has {n_classes} classes")
            out.append(i)
        elif not labels:
            raise InvalidOptionError(f"{model.name} has no labels: give class indices "
                                     f"(0..{n_classes - 1})")
        else:
            near = difflib.get_close_matches(str(t).lower(), list(lower), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(labels[lower[n]]) for n in near)}?" if near \
                else f"; its tags: {', '.join(labels[:12])}{' ...' if len(labels) > 12 else ''}"
            raise InvalidOptionError(f"{model.name} has no tag {t!r}{hint}")
    return out


__getattr__ = renamed(__name__, RENAMED, globals())
