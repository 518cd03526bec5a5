"""A bare frozen TensorFlow graph (``.pb``) whose input the caller describes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..graph import FrozenGraph, node_name
from ..representations import Representation
from .base import FrozenModel, ModelAdapter

__all__ = ["GraphDefAdapter"]


class GraphDefAdapter(ModelAdapter):
    """Opens a frozen ``GraphDef`` file given its input tensor, layout and representation.

    Options: ``input`` (tensor name; default: the graph's only placeholder),
    ``input_axes`` (``"NTF"``, ``"NFT"``, ``"NTFC"``, ``"NFTC"``), ``representation``,
    ``input_length`` (frames per patch; default: the placeholder's time size),
    ``labels``, ``output``.
    """

    name = "graphdef"

    def guess_can_open(self, source: Any) -> bool:
        return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".pb"

    def open(
        self,
        source: Any,
        *,
        representation: Representation | None = None,
        input: str | None = None,  # noqa: A002 - the field's word
        input_axes: str | None = None,
        input_length: int | None = None,
        labels: list[str] | None = None,
        output: str | None = None,
        name: str | None = None,
        **_: Any,
    ) -> FrozenModel:
        graph = FrozenGraph.from_file(source)
        if input is None:
            phs = graph.placeholders()
            if len(phs) != 1:
                raise ModelLoadError(
                    f"{source}: the graph has {len(phs)} placeholders ({', '.join(phs)}); "
                    "name the input with input=..."
                )
            input = phs[0]
        if representation is None or input_axes is None:
            raise ModelLoadError(
                f"{source}: a bare frozen graph needs representation=... and input_axes=... "
                "(e.g. 'NTF' for [batch, frames, bands])"
            )
        node = graph.node(input)
        if input_length is None:
            shape = graph.attr(node, "shape")
            t = input_axes.index("T")
            if shape and len(shape) > t and shape[t]:
                input_length = int(shape[t])
        return FrozenModel(
            name=name or Path(source).stem, graph=graph, input_tensor=node_name(input),
            input_axes=input_axes, representation=representation, input_length=input_length,
            labels=labels, output_tensor=output, family=self.name, source=os.fspath(source),
        )
