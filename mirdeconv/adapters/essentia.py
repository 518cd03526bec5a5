"""Essentia's TensorFlow models: ``NAME.pb`` (frozen GraphDef) + ``NAME.json``, or a bare ``.pb``.

The JSON follows Essentia's published schema: ``schema.inputs`` / ``schema.outputs`` (with
``output_purpose`` "predictions" / "embeddings" / ""), ``inference.sample_rate`` and
``inference.algorithm``, ``classes``.  Older JSONs without ``inference`` or
``output_purpose`` work too (the algorithm is then read from the input's shape).  A bare
``.pb`` takes ``input=`` / ``output=`` / ``algorithm=`` from the caller, with the same
defaults.

The input representation follows the algorithm:

================================================  =========================================
algorithm                                         input
================================================  =========================================
TensorflowPredictMusiCNN (also EffnetDiscogs,     ``representations.musicnn()``, [B, T, 96]
MAEST)
TensorflowPredictVGGish                           ``representations.vggish()``, [B, 96, 64]
TensorflowPredictTempoCNN                         ``representations.tempocnn()``,
                                                  [B, 40, 256, 1], each patch standardised
================================================  =========================================

Other algorithms raise a clear error naming the algorithm.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..audio import resample, validate
from ..errors import ModelLoadError
from ..graph import FrozenGraph, node_name, tensor_name
from ..graph.operations import BIAS_ADD, CONV2D, RELU
from ..model import FrozenModel
from ..representations import Representation, Waveform, crepe, musicnn, tempocnn, vggish
from ..zoo import fetch, is_zoo_name
from .base import ModelAdapter

__all__ = ["EssentiaAdapter", "GraphAdapter", "EssentiaModel", "ALGORITHMS", "SUPPORTED_ALGORITHMS",
           "Algorithm", "open_graph"]


@dataclass(frozen=True)
class Algorithm:
    """One of Essentia's input algorithms as mirdeconv reproduces it.

    Attributes
    ----------
    name : str
        Essentia's name (``TensorflowPredictMusiCNN``).
    representation : callable
        Makes the representation (:mod:`mirdeconv.representations`).
    patch : int or None
        Input frames per patch when the graph leaves the length free (TempoCNN: 256).
    standardize : bool
        Each patch is standardised before the network (Essentia's ``TensorNormalize``).
    aliases : tuple of str
        Other names Essentia's code uses for it (``TempoCNN``).
    task : str
        What the output says: ``"tags"`` (classes), ``"tempo"`` (BPM classes).
    labels : list of str or None
        The classes when a model's description gives none (TempoCNN: 30 ... 285 BPM).
    """

    name: str
    representation: Any
    patch: int | None = None
    standardize: bool = False
    aliases: tuple[str, ...] = ()
    task: str = "tags"
    labels: tuple[str, ...] | None = None


#: Essentia's input algorithms, by name.
ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("TensorflowPredictMusiCNN", musicnn, 187),
    Algorithm("TensorflowPredictEffnetDiscogs", musicnn, 128),
    Algorithm("TensorflowPredictMAEST", musicnn),
    Algorithm("TensorflowPredictVGGish", vggish, 96),
    Algorithm("TensorflowPredictTempoCNN", tempocnn, 256, standardize=True, aliases=("TempoCNN",),
              task="tempo", labels=tuple(str(bpm) for bpm in range(30, 286))),
    Algorithm("TensorflowPredictCREPE", crepe, aliases=("PitchCREPE",), task="pitch",
              labels=tuple(f"{10 * 2 ** ((1997.3794084376191 + 20 * i) / 1200):.2f}"
                           for i in range(360))),
)}
SUPPORTED_ALGORITHMS = tuple(ALGORITHMS)


def _algorithm(name: str) -> Algorithm:
    """The algorithm called ``name`` (or one of its aliases).

    Raises
    ------
    ModelLoadError
        An algorithm mirdeconv does not reproduce, naming those it does.
    """
    for a in ALGORITHMS.values():
        if name == a.name or name in a.aliases:
            return a
    raise ModelLoadError(
        f"Essentia input algorithm {name!r} is not supported yet; supported: "
        + ", ".join(f"{a.name}{' (' + ', '.join(a.aliases) + ')' if a.aliases else ''}"
                    for a in ALGORITHMS.values()))


def _guess_algorithm(shape: list[int | None] | None) -> str | None:
    dims = [d for d in (shape or [])[1:]]
    if dims == [1024]:
        return "TensorflowPredictCREPE"
    if dims[-1:] == [96]:
        return "TensorflowPredictMusiCNN"
    if dims == [96, 64]:
        return "TensorflowPredictVGGish"
    if dims[:1] == [40] and dims[-1:] == [1]:
        return "TensorflowPredictTempoCNN"
    return None


@dataclass(eq=False)
class EssentiaModel(FrozenModel):
    """A FrozenModel that also knows its Essentia file and input algorithm.

    Attributes
    ----------
    graph_file : Path
        The ``.pb`` that Essentia loads.
    algorithm : str
        Essentia's ``inference.algorithm`` (e.g. ``TensorflowPredictMusiCNN``).
    metadata : dict
        The model's JSON (empty for a bare ``.pb``).
    """

    graph_file: Path | None = None
    algorithm: str = "TensorflowPredictMusiCNN"
    metadata: dict = field(default_factory=dict, repr=False)

    def predict(self, audio: np.ndarray, sr: float, *, output: str | None = None,
                patch_hop: int | None = None) -> tuple[np.ndarray, list[str]]:
        """Class activations through the real Essentia runtime.

        Parameters
        ----------
        audio : np.ndarray, shape (n_samples,)
            Mono track, any rate (resampled to the model's).
        sr : float
            Its sample rate.
        output : str, optional
            Output tensor (default: the model's predictions).
        patch_hop : int, optional
            Frames between patches (default: Essentia's, e.g. 93 for MusiCNN and VGGish,
            128 for TempoCNN).

        Returns
        -------
        activations : np.ndarray, shape (n_patches, n_classes)
        labels : list of str
        """
        es = backend.essentia_standard()
        y = resample(validate(audio, sr), sr, self.representation.sr)
        algo = getattr(es, self.algorithm)
        kw = {"graphFilename": str(self.graph_file), "input": node_name(self.input_tensor),
              "output": node_name(output or self.output_tensor or "model/Sigmoid")}
        if patch_hop:
            kw["patchHopSize"] = patch_hop
        act = np.asarray(algo(**kw)(y.astype(np.float32)))
        labels = list(self.labels or [str(i) for i in range(act.shape[-1])])
        return act, labels

    def native_predict(self, audio: np.ndarray, sr: float) -> tuple[np.ndarray, list[str], str]:
        """Predictions through Essentia's own runtime (see :meth:`predict`)."""
        act, labels = self.predict(audio, sr)
        return act, labels, f"Essentia {self.algorithm}"


def _musicnn_names(graph: FrozenGraph) -> tuple[dict[str, str], dict[str, str]]:
    """Readable names for the ReLU outputs of musicnn/vgg graphs: front-end timbral and
    temporal filters, mid-end layers; vgg's ``1CNN`` ... ``5CNN``."""
    names: dict[str, str] = {}
    desc: dict[str, str] = {}
    convs = [n for n in graph.graph_def.node if n.op == CONV2D]
    if not any(re.match(r"model/(conv2d(_\d+)?|\dCNN)/", c.name) for c in convs):
        return names, desc  # not musicnn/vgg: every conv, activation, pool by node name
    relu_of = {}
    for n in graph.graph_def.node:
        if n.op == RELU:
            src = graph.nodes.get(node_name(n.input[0]))
            if src is not None and src.op == BIAS_ADD:
                relu_of[node_name(src.input[0])] = n.name
    conv_names = {c.name for c in convs}

    def after_conv(c: Any) -> bool:  # another convolution lies between the input and c
        return any(a in conv_names for a in graph.ancestors([c.input[0]]))

    mid = 0
    for c in convs:
        relu = relu_of.get(c.name)
        if relu is None:
            continue
        w = graph.const_value(c.input[1])
        scope = c.name.rsplit("/", 1)[0].split("/")[-1]
        if scope.endswith("CNN"):                        # vgg: 1CNN ... 5CNN
            names[scope] = relu
            desc[scope] = f"conv {w.shape[0]}x{w.shape[1]}, {w.shape[3]} maps"
            continue
        kt, kf, cin, cout = w.shape
        front = not after_conv(c)
        if front and kf > 1:
            key = f"timbral_{kt}x{kf}"
            desc[key] = f"front end, timbral: {kt} frames x {kf} bands, {cout} maps"
        elif front:
            key = f"temporal_{kt}"
            desc[key] = f"front end, temporal: {kt} frames, {cout} maps"
        else:
            mid += 1
            key = f"midend_{mid}"
            desc[key] = f"mid end {mid}: {kt} frames over {kf} inputs, {cout} maps"
        names[key] = relu

    def order(key: str) -> tuple:
        kind, _, rest = key.partition("_")
        rank = {"timbral": 0, "temporal": 1, "midend": 2}.get(kind, 3)
        nums = [int(v) for v in rest.replace("x", " ").split()] or [0]
        return (rank, -nums[0] if kind == "temporal" else nums[-1], key)

    keys = sorted(names, key=order)
    return {k: names[k] for k in keys}, desc


def _read_metadata(pb: Path, metadata: str | os.PathLike | None, beside: bool) -> dict[str, Any]:
    """The model's Essentia JSON: ``metadata=``, else ``NAME.json`` beside the graph (when
    ``beside``), else none."""
    path = Path(metadata) if metadata else (pb.with_suffix(".json") if beside else None)
    if path is None or not path.is_file():
        if metadata:
            raise ModelLoadError(f"model description {path} not found")
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from None


def _find_input(graph: FrozenGraph, pb: Path, schema: dict, given: str | None,
                output: str | None) -> str:
    """The input placeholder: given, from the schema, or the one float placeholder of rank 2
    or more (a batch of spectrograms or of waveform frames) that the output depends on."""
    name = given or (schema["inputs"][0]["name"] if schema.get("inputs") else None)
    if name is None:
        nodes = graph.nodes
        phs = [n for n in graph.placeholders()
               if nodes[n].attr["dtype"].type == 1  # DT_FLOAT
               and len(graph.attr(nodes[n], "shape") or [0, 0, 0]) >= 2]
        if len(phs) > 1 and output and node_name(output) in nodes:
            above = set(graph.ancestors([tensor_name(output)]))
            phs = [n for n in phs if n in above]
        if len(phs) != 1:
            raise ModelLoadError(
                f"{pb.name}: cannot tell the input among placeholders {phs}; pass input=...")
        name = phs[0]
    if node_name(name) not in graph.nodes:
        raise ModelLoadError(f"{pb.name}: the graph has no input {name!r}")
    return name


def _find_output(graph: FrozenGraph, schema: dict, given: str | None) -> str | None:
    """The predictions: given, the schema's ``output_purpose == "predictions"`` (or its first
    output), else ``model/Sigmoid`` when the graph has it, else the graph's one output."""
    if given:
        return given
    outputs = schema.get("outputs", [])
    preds = [o["name"] for o in outputs if o.get("output_purpose") == "predictions"]
    if preds or outputs:
        return preds[0] if preds else outputs[0]["name"]
    if "model/Sigmoid" in graph.nodes:
        return "model/Sigmoid"
    sinks = graph.sinks()
    return sinks[0] if len(sinks) == 1 else None


def _input_axes(pb: Path, shape: list | None, representation: Representation) -> str:
    rank = len(shape) if shape else 3
    if isinstance(representation, Waveform) and rank in (2, 3):
        return "NT" if rank == 2 else "NTC"
    if rank == 3:
        return "NTF"
    if rank == 4 and shape[-1] == 1:
        return "NFTC" if shape[1] == representation.n_bands else "NTFC"
    raise ModelLoadError(f"{pb.name}: input shape {shape} is not a spectrogram layout mirdeconv "
                         "knows; pass input_axes=...")


def _essentia_representation(pb: Path, algorithm: str | None, shape: list | None,
                             meta: dict) -> Representation:
    if algorithm is None:
        raise ModelLoadError(
            f"{pb.name}: cannot tell the input algorithm from the input shape {shape}; pass "
            "algorithm='TensorflowPredictMusiCNN' (--algorithm on the command line), or "
            "representation= and input_axes=")
    rep = _algorithm(algorithm).representation()
    sr = meta.get("inference", {}).get("sample_rate")
    if sr and int(sr) != rep.sr:
        raise ModelLoadError(f"{pb.name}: inference.sample_rate {sr} does not match {algorithm}'s "
                             f"{rep.sr} Hz")
    return rep


def open_graph(pb: Path, *, family: str, beside: bool, representation: Representation | None = None,
               input: str | None = None, output: str | None = None,  # noqa: A002 - Essentia's word
               algorithm: str | None = None, input_axes: str | None = None,
               input_length: int | None = None, labels: list[str] | None = None,
               name: str | None = None, metadata: str | os.PathLike | None = None) -> EssentiaModel:
    """Open a frozen graph with its Essentia description (see the module's documentation).

    Parameters
    ----------
    pb : Path
        The ``.pb`` file.
    family : str
        The adapter's name.
    beside : bool
        Read ``NAME.json`` beside the graph when ``metadata`` is not given.
    representation, input, output, algorithm, input_axes, input_length, labels, name, metadata
        Override what the description (or the graph) says.
    """
    graph = FrozenGraph.from_file(pb)
    meta = _read_metadata(pb, metadata, beside)
    schema = meta.get("schema", {})
    output = _find_output(graph, schema, output)
    input = _find_input(graph, pb, schema, input, output)  # noqa: A001
    shape = graph.attr(graph.node(input), "shape")
    algorithm = algorithm or meta.get("inference", {}).get("algorithm") or _guess_algorithm(shape)
    algo = _algorithm(algorithm) if algorithm else None
    if representation is None:
        representation = _essentia_representation(pb, algorithm, shape, meta)
    input_axes = input_axes or _input_axes(pb, shape, representation)
    if input_length is None and shape:
        t = input_axes.index("T")
        input_length = shape[t] if len(shape) > t and shape[t] and shape[t] > 0 else None
    if input_length is None and algo is not None:
        input_length = algo.patch
    layer_names, desc = _musicnn_names(graph)
    return EssentiaModel(
        name=name or pb.stem, graph=graph, input_tensor=tensor_name(node_name(input)),
        input_axes=input_axes, representation=representation, input_length=input_length,
        labels=labels or meta.get("classes") or (list(algo.labels) if algo and algo.labels else None),
        task=algo.task if algo else "tags", layer_tensors=layer_names or None,
        output_tensor=tensor_name(node_name(output)) if output else None, family=family,
        source=os.fspath(pb), descriptions=desc,
        input_normalization="patch" if algo and algo.standardize else "none",
        graph_file=pb, algorithm=algo.name if algo else "", metadata=meta,
    )


class EssentiaAdapter(ModelAdapter):
    """Essentia's models: ``NAME.pb`` with ``NAME.json`` beside it, and the zoo's names."""

    name = "essentia"
    priority = 20
    description = "Essentia's models: NAME.pb + NAME.json (and the musicnn zoo's names)"

    def guess_can_open(self, source: Any) -> bool:
        if is_zoo_name(source):
            return True
        return (isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".pb"
                and Path(source).with_suffix(".json").is_file())

    def open(self, source: Any, *, representation: Representation | None = None,
             input: str | None = None, output: str | None = None,  # noqa: A002 - Essentia's word
             algorithm: str | None = None, input_axes: str | None = None,
             input_length: int | None = None, labels: list[str] | None = None,
             name: str | None = None, metadata: str | os.PathLike | None = None) -> EssentiaModel:
        """Open ``NAME.pb`` with its ``NAME.json``, or a zoo name (the options as for
        :func:`open_graph`)."""
        if is_zoo_name(source):
            name = str(source).split(":")[-1] if name is None else name
            source = fetch(str(source))
        return open_graph(Path(source), family=self.name, beside=True,
                          representation=representation, input=input, output=output,
                          algorithm=algorithm, input_axes=input_axes, input_length=input_length,
                          labels=labels, name=name, metadata=metadata)


class GraphAdapter(ModelAdapter):
    """A bare frozen graph (``.pb``): input, output and Essentia input algorithm from the
    caller (``input=``, ``output=``, ``algorithm=``, or ``representation=`` and
    ``input_axes=``), else guessed from the graph."""

    name = "pb"
    priority = 90
    description = "a bare TensorFlow frozen graph (.pb)"

    def guess_can_open(self, source: Any) -> bool:
        return isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".pb"

    def open(self, source: Any, *, representation: Representation | None = None,
             input: str | None = None, output: str | None = None,  # noqa: A002 - Essentia's word
             algorithm: str | None = None, input_axes: str | None = None,
             input_length: int | None = None, labels: list[str] | None = None,
             name: str | None = None, metadata: str | os.PathLike | None = None) -> EssentiaModel:
        """Open a bare ``.pb`` (the options as for :func:`open_graph`)."""
        return open_graph(Path(source), family=self.name, beside=False,
                          representation=representation, input=input, output=output,
                          algorithm=algorithm, input_axes=input_axes, input_length=input_length,
                          labels=labels, name=name, metadata=metadata)
