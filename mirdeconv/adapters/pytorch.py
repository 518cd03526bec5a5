"""PyTorch models: a ``torch.nn.Module`` in memory, or a TorchScript file (``.pt``).

mirdeconv exports the module to ONNX itself, with PyTorch's ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``: it records each operation's module path, which
names the layers, and it exports recurrent layers and reductions that the older TorchScript
exporter's graphs do not convert), with a free batch axis, then opens the ONNX graph as the
``onnx`` adapter does (:func:`.onnx_model.from_onnx`).  A TorchScript file can only go
through the TorchScript exporter.

A TorchScript file holds code (TorchScript, run by PyTorch's interpreter when the module is
called, and so when it is exported): like a Keras file with Lambda layers it is opened only
with ``allow_unsafe=True`` (``--allow-unsafe``), for files you trust.  A plain checkpoint
(``state_dict``) holds no architecture: build the module, load the weights into it
(``torch.load(..., weights_only=True)``), and pass the module.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..errors import ModelLoadError, UnsafeModelError, UnsupportedGraphError, message_of
from ..model import FrozenModel
from ..representations import Representation
from .base import ModelAdapter, needs_representation
from .onnx_model import converted_axes, from_onnx

__all__ = ["TorchAdapter", "from_torch", "export_onnx"]

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts")


def _example(module: Any, example_input: Any, input_axes: str | None, rep: Representation,
             input_length: int | None) -> Any:
    """The example input as a float32 tensor with a batch of two (an exporter specialises a
    batch of one), from the one given or from the layout, the bands and ``input_length``."""
    torch = backend.torch()
    if example_input is None:
        if input_axes is None or input_length is None:
            raise ModelLoadError(
                "a PyTorch module needs an example input to be exported: pass example_input= "
                "(a tensor shaped like one batch of the model's input), or input_axes= and "
                "input_length= (frames per patch)")
        sizes = {"N": 2, "C": 1, "F": rep.n_bands, "T": int(input_length)}
        return torch.zeros([sizes[a] for a in input_axes])
    x = torch.as_tensor(np.asarray(example_input) if not torch.is_tensor(example_input)
                        else example_input).float().detach()
    if x.ndim < 2:
        raise ModelLoadError(f"example_input must have a batch axis; got shape {tuple(x.shape)}")
    if x.shape[0] == 1:
        x = torch.cat([x, x], 0)
    return x


def export_onnx(module: Any, example: Any, *, script: bool = False) -> Any:
    """``module`` as an ``onnx.ModelProto`` with a free batch axis.

    Parameters
    ----------
    module : torch.nn.Module or torch.jit.ScriptModule
        Put in evaluation mode first (batch norms use their running statistics).
    example : torch.Tensor
        One batch of input (a batch of at least two).
    script : bool
        A TorchScript module: the TorchScript exporter.

    Raises
    ------
    UnsupportedGraphError
        The exporter fails (its first line quoted).
    """
    torch = backend.torch()
    onnx = backend.onnx()
    was_training = module.training
    module.eval()
    log = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), \
                contextlib.redirect_stderr(log), torch.no_grad():
            warnings.simplefilter("ignore")
            if script:
                buf = io.BytesIO()
                torch.onnx.export(module, (example,), buf, input_names=["input"],
                                  dynamic_axes={"input": {0: "batch"}}, dynamo=False,
                                  opset_version=17)
                return onnx.load_from_string(buf.getvalue())
            program = torch.onnx.export(module, (example,), None, input_names=["input"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},),
                                        dynamo=True, verbose=False)
            return program.model_proto
    except Exception as exc:  # noqa: BLE001 - torch.export's many error types
        raise UnsupportedGraphError(
            f"PyTorch cannot export {type(module).__name__} to ONNX: {message_of(exc)}") from exc
    finally:
        module.train(was_training)


def from_torch(
    module: Any,
    representation: Representation,
    *,
    example_input: Any = None,
    input_axes: str | None = None,
    input_length: int | None = None,
    source: str = "",
    name: str | None = None,
    **options: Any,
) -> FrozenModel:
    """Export a PyTorch module and open it as a :class:`FrozenModel`.

    Parameters
    ----------
    module : torch.nn.Module
        The network from its input (the spectrogram, or the waveform) to its output.
    representation : Representation
        How audio becomes the module's input.
    example_input : array-like, optional
        One batch of input, shaped as the module takes it (e.g. ``(1, 1, 96, 1813)``); its
        time length is the patch length.  Default: zeros shaped by ``input_axes``,
        the representation's bands and ``input_length``.
    input_axes : str, optional
        The input's layout, a key of :data:`mirdeconv.adapters.onnx_model.ONNX_AXES`
        (``"NCFT"``: batch, channel, bands, frames); guessed from the shape when omitted.
    input_length : int, optional
        Frames per patch (default: the example's).
    **options
        ``labels``, ``layers``, ``output``, ``task``, ``input_normalization`` (as for
        :func:`.onnx_model.from_onnx`).
    """
    torch = backend.torch()
    script = isinstance(module, torch.jit.ScriptModule)
    if not script and not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if input_axes is not None:
        converted_axes(input_axes)               # a layout mirdeconv reads, or the error
    x = _example(module, example_input, input_axes, representation, input_length)
    model = export_onnx(module, x, script=script)
    tag = name or type(module).__name__
    return from_onnx(model, representation, input_axes=input_axes, input_length=input_length,
                     name=tag, source=source or f"<torch.nn.Module {tag}>", family="pytorch",
                     **options)


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive (a zip holding ``code/`` and ``constants.pkl``), not a pickle."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def load_torchscript(path: str | os.PathLike, *, allow_unsafe: bool = False) -> Any:
    """Read a TorchScript file (``torch.jit.save``), never a pickled checkpoint.

    Parameters
    ----------
    path : str or PathLike
    allow_unsafe : bool
        The file's TorchScript code may run (it does when the module is exported): only for
        files you trust.

    Raises
    ------
    ModelLoadError
        Missing, a plain checkpoint (``torch.save`` of a ``state_dict`` or of a module),
        or unreadable.
    UnsafeModelError
        A TorchScript file without ``allow_unsafe``.
    """
    torch = backend.torch()
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"model file not found: {p}")
    if not _is_torchscript(p):
        raise ModelLoadError(
            f"{p.name} is not a TorchScript file: a PyTorch checkpoint (a state_dict) holds "
            "weights, not the network. Build the module in Python, load the weights with "
            "torch.load(path, weights_only=True) and module.load_state_dict(...), and pass "
            "the module: mirdeconv.load_model(module, example_input=..., representation=...)")
    if not allow_unsafe:
        raise UnsafeModelError(
            f"{p.name} is a TorchScript file: it holds code that runs when the module is "
            "called. If you trust the file, opt in with allow_unsafe=True "
            "(mirdeconv.load_model(path, allow_unsafe=True), or --allow-unsafe on the command "
            "line)")
    try:
        return torch.jit.load(os.fspath(p), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - TorchScript's many error types
        raise ModelLoadError(f"cannot read TorchScript file {p.name}: {message_of(exc)}") from None


class TorchAdapter(ModelAdapter):
    """Opens ``torch.nn.Module`` objects and TorchScript files (the ``torch`` extra)."""

    name = "pytorch"
    priority = 20
    description = "PyTorch: torch.nn.Module in memory, TorchScript .pt files (exported to ONNX)"
    def guess_can_open(self, source: Any) -> bool:
        if isinstance(source, str | os.PathLike):
            return Path(source).suffix.lower() in TORCHSCRIPT_SUFFIXES
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(source, torch.nn.Module)

    def open(self, source: Any, *, representation: Representation | None = None,
             example_input: Any = None, input_axes: str | None = None,
             labels: list[str] | None = None, name: str | None = None,
             layers: list[str] | None = None, output: str | None = None,
             input_length: int | None = None, task: str = "tags",
             input_normalization: str = "none", allow_unsafe: bool = False) -> FrozenModel:
        """Open a ``torch.nn.Module`` or a TorchScript file (the options as for
        :func:`from_torch`; ``allow_unsafe`` as for :func:`load_torchscript`)."""
        rep = needs_representation(representation, "a PyTorch model")
        options = dict(example_input=example_input, input_axes=input_axes, labels=labels,
                       layers=layers, output=output, input_length=input_length, task=task,
                       input_normalization=input_normalization)
        if isinstance(source, str | os.PathLike):
            module = load_torchscript(source, allow_unsafe=allow_unsafe)
            return from_torch(module, rep, source=os.fspath(source),
                              name=Path(source).stem if name is None else name, **options)
        return from_torch(source, rep, name=name, **options)
