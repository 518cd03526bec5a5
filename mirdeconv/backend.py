"""The one module that imports TensorFlow, Keras, Essentia, and PyTorch and its ONNX tools.

essentia-tensorflow bundles its own libtensorflow.  Loading it after the
``tensorflow`` package aborts the whole process ("Op with name Bitcast already
exists"); loading it first, then ``tensorflow``, works.  So every part of
mirdeconv asks this module for TensorFlow or Essentia, and this module:

* imports nothing heavy at ``import mirdeconv`` time;
* when TensorFlow is first needed, imports Essentia first (if it is installed
  and TensorFlow is not loaded yet), then TensorFlow;
* when Essentia is needed but the user already imported TensorFlow (or Keras)
  on their own, raises :class:`~mirdeconv.errors.EssentiaImportOrderError`
  explaining what to do, instead of letting the process abort;
* imports PyTorch, ONNX and the ONNX-to-TensorFlow converter (the optional extra
  ``mirdeconv[torch]``) only when a PyTorch or ONNX model is opened, after TensorFlow, and
  says what to install when they are missing (:class:`~mirdeconv.errors.MissingExtraError`);
* keeps the terminal quiet.  In a library process TensorFlow's C++ INFO and WARNING lines
  are hidden (``TF_CPP_MIN_LOG_LEVEL=2``) and Essentia's INFO lines are off.  The command
  line and the app go further (:func:`quiet_mode`): TensorFlow's, absl's and CUDA's start-up
  lines, which C++ writes straight to the process's stderr before any logging exists, are
  sent to /dev/null while the libraries load, TensorFlow's own Python logger is set to
  errors, and dependencies' Python warnings are filtered.  ``MIRDECONV_VERBOSE=1`` (or the
  CLI's ``--verbose``) lets everything through.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from .errors import BackendError, EssentiaImportOrderError, MissingExtraError
from .options import environment, environment_kept

__all__ = [
    "tensorflow",
    "keras",
    "torch",
    "onnx",
    "onnx2tf",
    "onnxruntime",
    "onnx_optimizer",
    "TORCH_EXTRA",
    "essentia",
    "essentia_standard",
    "essentia_status",
    "tensorflow_loaded",
    "quiet_mode",
    "verbose",
    "convert_variables_to_constants",
    "op_is_stateful",
    "function_graph_def",
]

_lock = threading.RLock()
_essentia_error: str | None = None  # why Essentia cannot be used, once known
_mode: str | None = None            # "quiet" | "verbose" (front ends) | None (a library)

ESSENTIA_ORDER_HELP = (
    "TensorFlow was imported before Essentia in this process, and essentia-tensorflow "
    "cannot be loaded after it (the process would abort). Import mirdeconv or essentia "
    "before tensorflow/keras (for example `import essentia` as the first import of your "
    "script or notebook, or call mirdeconv.backend.essentia() first), or restart the "
    "Python process."
)


def tensorflow_loaded() -> bool:
    """Whether the ``tensorflow`` package is already imported in this process."""
    return "tensorflow" in sys.modules


def _essentia_installed() -> bool:
    return importlib.util.find_spec("essentia") is not None


def quiet_mode(verbose: bool | None = None) -> None:
    """For the front ends (the CLI, the app): keep every log line of TensorFlow, absl, CUDA
    and the dependencies off the terminal, unless ``verbose`` (None: ``MIRDECONV_VERBOSE``)."""
    global _mode
    loud = environment().verbose if verbose is None else bool(verbose)
    _mode = "verbose" if loud else "quiet"
    if not loud:
        warnings.filterwarnings("ignore", module=r"^(?!mirdeconv)")


def _level() -> str:
    if _mode is not None:
        return _mode
    return "verbose" if environment().verbose else "library"


def verbose() -> bool:
    """Whether log lines of TensorFlow, absl, CUDA and the dependencies reach the terminal."""
    return _level() == "verbose"


def _quiet_tensorflow_logs() -> None:
    # TensorFlow's C++ chatter (CUDA probes, oneDNN notices, cuInit errors) is noise for users
    level = {"quiet": "3", "library": "2"}.get(_level())
    if level:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", level)


@contextmanager
def _silent_stderr() -> Iterator[None]:
    """In quiet mode, send the process's own stderr (file descriptor 2) to /dev/null while a
    library loads: its C++ start-up lines are written before any logging is configured."""
    if _level() != "quiet":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def essentia_status() -> tuple[bool, str]:
    """Tell whether Essentia can be used in this process, without importing TensorFlow.

    Returns
    -------
    usable : bool
        True if :func:`essentia` would succeed.
    reason : str
        Empty when usable, else a sentence saying why not.
    """
    if "essentia" in sys.modules:
        return True, ""
    if not _essentia_installed():
        return False, "essentia-tensorflow is not installed (pip install essentia-tensorflow)"
    if tensorflow_loaded():
        return False, ESSENTIA_ORDER_HELP
    return True, ""


def essentia() -> ModuleType:
    """Import and return the ``essentia`` module (from essentia-tensorflow).

    Raises
    ------
    EssentiaImportOrderError
        If TensorFlow was imported first, which would abort the process.
    BackendError
        If essentia-tensorflow is not installed.
    """
    global _essentia_error
    with _lock:
        if "essentia" in sys.modules:
            return sys.modules["essentia"]
        usable, reason = essentia_status()
        if not usable:
            _essentia_error = reason
            if tensorflow_loaded() and _essentia_installed():
                raise EssentiaImportOrderError(reason)
            raise BackendError(reason)
        _quiet_tensorflow_logs()
        with _silent_stderr():
            import essentia as _es

        try:  # Essentia's INFO lines are noise in a library
            _es.log.infoActive = verbose()
        except AttributeError:  # pragma: no cover - older essentia
            pass
        return _es


def essentia_standard() -> ModuleType:
    """Import and return ``essentia.standard`` (see :func:`essentia`)."""
    essentia()
    with _silent_stderr():
        import essentia.standard as es

    return es


def tensorflow() -> ModuleType:
    """Import and return TensorFlow, loading Essentia first when that is still possible."""
    with _lock:
        if not tensorflow_loaded():
            usable, _ = essentia_status()
            if usable:
                essentia()
            _quiet_tensorflow_logs()
        loaded = tensorflow_loaded()
        try:
            with _silent_stderr():
                import tensorflow as tf
        except ImportError as exc:  # pragma: no cover - tensorflow is a dependency
            raise BackendError(f"TensorFlow cannot be imported: {exc}") from exc
        if not loaded and _level() == "quiet":
            tf.get_logger().setLevel(logging.ERROR)  # e.g. "... triggered tf.function retracing"
        return tf


def keras() -> ModuleType:
    """Import and return Keras 3 (on the TensorFlow backend), after :func:`tensorflow`."""
    tensorflow()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _silent_stderr():
        import keras as _keras

    if _keras.backend.backend() != "tensorflow":
        raise BackendError(
            f"Keras is configured for the {_keras.backend.backend()!r} backend; mirdeconv needs "
            "TensorFlow (set KERAS_BACKEND=tensorflow before importing keras)."
        )
    return _keras


#: How to install what PyTorch and ONNX models need.
TORCH_EXTRA = 'pip install "mirdeconv[torch]"'


def _optional(module: str, what: str) -> ModuleType:
    """Import an optional dependency of the ``torch`` extra, or say what to install."""
    try:
        with _silent_stderr():
            return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs {module}, which is not installed ({exc}): {TORCH_EXTRA} "
            "installs PyTorch, ONNX and the converter") from exc


def torch() -> ModuleType:
    """Import and return PyTorch (the ``torch`` extra), after TensorFlow (and so after
    Essentia), so that every library keeps its import order.  Unless verbose, its ONNX
    exporter's log lines (progress, "torchvision is not installed") stay off the terminal."""
    with _lock:
        tensorflow()
        module = _optional("torch", "a PyTorch model")
        if not verbose():
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        return module


def onnx() -> ModuleType:
    """Import and return the ``onnx`` package (the ``torch`` extra), its reference evaluator
    (``onnx.reference``) loaded."""
    with _lock:
        module = _optional("onnx", "an ONNX model")
        _optional("onnx.reference", "an ONNX model")
        return module


def onnxruntime() -> ModuleType | None:
    """Import and return ONNX Runtime (the ``torch`` extra), or None when it is not
    installed (the converted graph is then not checked against it)."""
    with _lock:
        try:
            return _optional("onnxruntime", "checking a converted ONNX model")
        except MissingExtraError:
            return None


def onnx_optimizer() -> ModuleType:
    """``onnxscript.optimizer`` (constant folding of ONNX graphs; the ``torch`` extra, as
    PyTorch's ONNX exporter needs it)."""
    with _lock:
        return _optional("onnxscript.optimizer", "an ONNX model")


def onnx2tf() -> ModuleType:
    """Import and return the ONNX-to-TensorFlow converter ``onnx2tf`` (the ``torch`` extra).

    Importing it sets ``TF_USE_LEGACY_KERAS=1`` and ``TF_CPP_MIN_LOG_LEVEL=3`` in the
    process's environment; both are put back as they were, so that Keras 3 and the user's
    own log settings are left alone.
    """
    with _lock:
        tensorflow()
        if "onnx2tf" in sys.modules:
            return sys.modules["onnx2tf"]
        with environment_kept("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL"):
            return _optional("onnx2tf", "converting an ONNX model")


def convert_variables_to_constants(concrete_function: Any) -> Any:
    """TensorFlow's ``convert_variables_to_constants_v2``: a concrete function whose variables
    are constants (how a Keras model is frozen into a graph)."""
    tensorflow()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return convert_variables_to_constants_v2(concrete_function)


def op_is_stateful(op_type: str) -> bool:
    """Whether TensorFlow registers ``op_type`` as stateful (its value is not a function of
    its inputs: variables, random numbers, queues); unknown types count as stateful."""
    tensorflow()
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(op_type)
    return op_def is None or bool(op_def.is_stateful)


def function_graph_def(function_def: Any) -> tuple[Any, dict[str, str]]:
    """A FunctionDef's body as a GraphDef (its inputs as Placeholders named after the input
    arguments) and the map from the function's nested tensor names (``node:arg:index``) to
    the GraphDef's (``node:index``)."""
    tensorflow()
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    return function_def_to_graph_def(function_def)
