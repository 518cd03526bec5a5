"""The model description every adapter produces: a :class:`FrozenModel`.

A frozen TensorFlow graph with a named input, the input's layout and representation, the
feature layers (with their axes and receptive fields) and optional class labels.  It sits
below the engine and holds no engine state: the engine keeps what it compiles for a model
in its own cache (:mod:`mirdeconv.engine.cache`).  Identity is the object itself (models
are compared and hashed by identity, so they can key weak caches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend
from .errors import ModelLoadError, NoFeatureLayersError, UnknownLayerError
from .graph import (
    BN_OPS,
    CONV_OPS,
    NONLINEAR_OPS,
    POOL_OPS,
    FrozenGraph,
    LayerInfo,
    node_name,
    tensor_name,
    trace_axes,
)
from .graph.canonical import canonicalise
from .normalization import get_normalization
from .representations import Representation

__all__ = ["FrozenModel", "DEFAULT_PATCH_FRAMES", "INPUT_AXES"]

#: Nominal number of input frames used to probe graphs whose input length is free.
DEFAULT_PATCH_FRAMES = 128

#: Input layouts: batch, then time / frequency (and a channel axis of size 1); raw-waveform
#: models: batch and samples (and a channel axis of size 1).
INPUT_AXES = ("NTF", "NFT", "NTFC", "NFTC", "NT", "NTC")


@dataclass(eq=False)
class FrozenModel:
    """A model as the engine sees it.

    Parameters
    ----------
    name : str
        A name for people (and the output index).
    graph : FrozenGraph
        The frozen graph.
    input_tensor : str
        The graph's input tensor; its axis 0 is the batch.
    input_axes : {"NTF", "NFT", "NTFC", "NFTC", "NT", "NTC"}
        Layout of the input: batch, then time / frequency (and a channel axis of size 1);
        ``NT`` and ``NTC``: a waveform (:class:`mirdeconv.representations.Waveform`).
    representation : Representation
        How audio becomes the input.
    input_length : int or None
        Frames per input patch the model was built for (None: any length).
    labels : list of str or None
        Class labels of the model's output.
    layer_tensors : dict or None
        Layer name -> tensor of the graph, in order.  ``None``: every convolution (and
        the activations, batch norms and pools after it) is offered, named by its node.
    output_tensor : str or None
        The model's prediction output.
    input_normalization : str
        How the input is normalised before the network, a name in
        :data:`mirdeconv.normalization.INPUT_NORMALIZATIONS`: ``"none"``, ``"patch"`` (each patch
        standardised, as Essentia's TempoCNN; such models always take patches), ``"track"``
        or ``"track-max"`` (the whole track standardised or divided by its maximum, as
        Schreiber's tempocnn package).
    task : {"tags", "tempo", "pitch"}
        What the output says: class activations, tempo classes whose labels are BPM, or
        pitch classes whose labels are Hz.
    family : str
        Which adapter opened it.
    source : str
        Where it came from (a path, or a description of an object in memory).
    """

    name: str
    graph: FrozenGraph = field(repr=False)
    input_tensor: str
    input_axes: str
    representation: Representation
    input_length: int | None = None
    labels: list[str] | None = None
    layer_tensors: dict[str, str] | None = None
    output_tensor: str | None = None
    input_normalization: str = "none"
    task: str = "tags"
    family: str = ""
    source: str = ""
    descriptions: dict[str, str] = field(default_factory=dict, repr=False)
    _layers: list[LayerInfo] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.input_axes not in INPUT_AXES:
            raise ModelLoadError(
                f"input_axes must be one of {', '.join(INPUT_AXES)}; got {self.input_axes!r}"
            )
        self.input_tensor = tensor_name(self.input_tensor)
        if node_name(self.input_tensor) not in self.graph.nodes:
            raise ModelLoadError(f"the graph has no input node {node_name(self.input_tensor)!r}")
        waveform = getattr(self.representation, "kind", "") == "waveform"
        if waveform == ("F" in self.input_axes):
            raise ModelLoadError(
                f"{self.name}: input_axes {self.input_axes} do not fit "
                f"{self.representation.describe()} (a waveform takes NT or NTC)")
        get_normalization(self.input_normalization)
        if self.input_length is None and self.frames_per_patch:
            self.input_length = self.frames_per_patch
        self._check_bands()
        probe = {self.input_tensor: np.zeros(self.nominal_input_shape(), np.float32)}
        try:
            self.graph = FrozenGraph(canonicalise(self.graph.graph_def, [self.input_tensor], probe))
        except Exception as exc:  # noqa: BLE001 - TensorFlow's errors for broken graphs
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.name}: the graph cannot be read: {msg[:300]}") from None

    def _check_bands(self) -> None:
        """The input's shape, where the graph fixes it, fits the representation: its frequency
        axis has the representation's bands, its channel axis one channel, a framed
        waveform's time axis the frame's samples.

        Raises
        ------
        ModelLoadError
            Naming both numbers.
        """
        shape = self.graph.attr(self.graph.node(self.input_tensor), "shape")
        if not shape or len(shape) != len(self.input_axes):
            return
        sizes = {a: n for a, n in zip(self.input_axes, shape) if n not in (None, -1)}
        rep = self.representation
        if "F" in sizes and sizes["F"] != rep.n_bands:
            raise ModelLoadError(
                f"{self.name}: the model's input has {sizes['F']} bands (input_axes "
                f"{self.input_axes}), the representation {rep.n_bands}: {rep.describe()}")
        if sizes.get("C", 1) != 1:
            raise ModelLoadError(
                f"{self.name}: the model's input has {sizes['C']} channels on its last axis "
                f"(input_axes {self.input_axes}); {rep.describe()} gives one")
        if self.frames_per_patch and sizes.get("T", self.frames_per_patch) != self.frames_per_patch:
            raise ModelLoadError(
                f"{self.name}: the model takes {sizes['T']} samples per frame, "
                f"{rep.describe()} gives {self.frames_per_patch}")

    # -- how a track is cut ---------------------------------------------------------------------
    @property
    def frames_per_patch(self) -> int | None:
        """A framed waveform's frame (CREPE: 1024 samples), else None."""
        return getattr(self.representation, "frame", None)

    @property
    def patch_hop(self) -> int | None:
        """Frames between the starts of patches: a framed waveform's hop (CREPE: 160), else
        None (half a patch)."""
        return getattr(self.representation, "hop", None)

    @property
    def patches_add_up(self) -> bool:
        """The patches' masks add up (each patch is one application of the model, as CREPE's
        frames), instead of being averaged with weights that ignore their edges."""
        return self.frames_per_patch is not None

    @property
    def standardizes(self) -> bool:
        """Each patch is standardised before the network (TempoCNN, CREPE)."""
        return get_normalization(self.input_normalization).per_patch or bool(
            getattr(self.representation, "normalize_frames", False))

    def nominal_input_shape(self) -> tuple[int, ...]:
        """Shape of one input patch, batch 1, e.g. ``(1, 96, 1366, 1)``."""
        n_frames = self.input_length or getattr(self.representation, "nominal_frames",
                                                DEFAULT_PATCH_FRAMES)
        sizes = {"N": 1, "T": n_frames, "F": self.representation.n_bands, "C": 1}
        return tuple(sizes[a] for a in self.input_axes)

    def to_input(self, features: np.ndarray) -> np.ndarray:
        """Model input from representation frames.

        Parameters
        ----------
        features : np.ndarray, shape (..., n_frames, n_bands)

        Returns
        -------
        np.ndarray, float32, shape (..., *input_axes[1:])
        """
        x = np.asarray(features, np.float32)
        if self.input_axes == "NT":          # a waveform: its one band is no axis of the model's
            return x[..., 0]
        if self.input_axes == "NTC":         # ... or the channel axis
            return x
        if self.input_axes.startswith("NFT"):
            x = np.swapaxes(x, -1, -2)
        if self.input_axes.endswith("C"):
            x = x[..., None]
        return x

    def from_input(self, x: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_input`: ``(..., *input_axes[1:]) -> (..., n_frames, n_bands)``."""
        x = np.asarray(x)
        if self.input_axes == "NT":
            return x[..., None]
        if self.input_axes == "NTC":
            return x
        if self.input_axes.endswith("C"):
            x = x[..., 0]
        if self.input_axes.startswith("NFT"):
            x = np.swapaxes(x, -1, -2)
        return x

    # -- layers -----------------------------------------------------------------------------
    def _static_shapes(self, tensors: list[str]) -> dict[str, tuple[int, ...] | None]:
        tf = backend.tensorflow()
        try:
            return self.graph.static_shapes(tensors, self.input_tensor, self.nominal_input_shape())
        except (ValueError, tf.errors.InvalidArgumentError) as exc:
            raise ModelLoadError(
                f"{self.name}: the graph does not accept an input of shape "
                f"{self.nominal_input_shape()} ({str(exc).splitlines()[0]})") from None

    @property
    def layers(self) -> list[LayerInfo]:
        """The feature layers offered for deconvolution, input to output."""
        if self._layers is None:
            self._layers = self._find_layers()
        return self._layers

    def _find_layers(self) -> list[LayerInfo]:
        g = self.graph
        if self.layer_tensors is not None:
            wanted = {n: tensor_name(t) for n, t in self.layer_tensors.items()}
            targets = list(wanted.values())
        else:
            targets = [tensor_name(n.name) for n in g.graph_def.node
                       if n.op in CONV_OPS | POOL_OPS | NONLINEAR_OPS | BN_OPS]
            wanted = {node_name(t): t for t in targets}
        if not targets:
            raise NoFeatureLayersError(f"{self.name}: the model has no convolutional layer")
        shapes = self._static_shapes(targets)
        known = {k: v for k, v in shapes.items() if v is not None}
        info = trace_axes(g, self.input_tensor, self.input_axes, known)
        layers: list[LayerInfo] = []
        for name, t in wanted.items():
            ti = info.get(t)
            if ti is None or not ti.after_conv or "T" not in ti.axes or "C" not in ti.axes:
                continue
            shape = known[t]
            ax = ti.axes
            rf_t, jump_t = ti.rf["T"]
            if rf_t is not None and self.input_length:   # a unit sees at most its patch
                rf_t = min(rf_t, self.input_length)
            rf_f, jump_f = ti.rf["F"] if "F" in ax else (None, None)
            layers.append(LayerInfo(
                name=name, tensor=t, n_features=int(shape[ax.index("C")]), axes=ax,
                shape=tuple(int(d) for d in shape), receptive_field=(rf_t, rf_f),
                stride=(jump_t, jump_f), time_agnostic=ti.time_agnostic,
                op=g.node(t).op, description=self.descriptions.get(name, ""),
            ))
        if not layers:
            raise NoFeatureLayersError(
                f"{self.name}: the model has no convolutional layer with a time axis to deconvolve"
            )
        return layers

    def layer(self, name: str | int) -> LayerInfo:
        """A feature layer by name (or by position in :attr:`layers`).

        Raises
        ------
        UnknownLayerError
            Naming the layers that exist.
        """
        layers = self.layers
        if isinstance(name, (int, np.integer)):
            if -len(layers) <= name < len(layers):
                return layers[name]
        else:
            for li in layers:
                if li.name == name:
                    return li
        raise UnknownLayerError(
            f"unknown layer {name!r} in {self.name}; its feature layers are: "
            + ", ".join(li.name for li in layers)
        )

    def native_predict(self, audio: np.ndarray, sr: float) -> tuple[np.ndarray, list[str], str] | None:
        """Class activations through the model's own runtime, when it has one (e.g. Essentia's
        ``TensorflowPredict*``); None: predict through the frozen graph
        (:func:`mirdeconv.prediction.predict`).

        Returns
        -------
        (activations (n_patches, n_classes), labels, how) or None
        """
        return None

    # -- identity -------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What identifies this model in outputs: name, family, source, graph digest, representation."""
        return {
            "name": self.name,
            "family": self.family,
            "source": self.source,
            "graph_sha256": self.graph.content_digest(),
            "input": self.input_tensor,
            "input_axes": self.input_axes,
            "input_length": self.input_length,
            "representation": self.representation.to_dict(),
        }
