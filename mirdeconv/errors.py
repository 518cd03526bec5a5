"""Exception types raised by mirdeconv.

Every error a user can cause (bad audio, a file that is not a model, an unknown
layer, ...) is raised as a subclass of :class:`MirdeconvError`, with a message
that names the problem.  Most also derive from the matching built-in type
(``ValueError``, ``FileNotFoundError``, ``IndexError``, ``KeyError``) so that
generic handlers keep working.
"""

from __future__ import annotations


class MirdeconvError(Exception):
    """Base class of every error raised on purpose by mirdeconv."""


# --- audio -------------------------------------------------------------------
class AudioError(MirdeconvError, ValueError):
    """The audio given cannot be used (base class of the audio errors)."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio file does not exist."""


class UnsupportedAudioError(AudioError):
    """The file is empty, corrupt, or in a format that cannot be decoded."""


class InvalidAudioError(AudioError):
    """The samples are unusable: empty, not finite (NaN/inf), or wrong shape."""


class TruncatedAudioError(UnsupportedAudioError):
    """The file is cut short or damaged: it decodes to less than its container declares."""


class SilentAudioError(AudioError):
    """The audio is digital silence, so every feature would be zero."""


class AudioTooLongError(AudioError):
    """The audio is longer than this front end takes (the app's upload limit)."""


class AudioTooShortError(AudioError):
    """The audio is shorter than the receptive field of the requested layer."""


# --- models ------------------------------------------------------------------
class ModelError(MirdeconvError):
    """Base class of the errors about models."""


class ModelLoadError(ModelError, ValueError):
    """The file is not a model mirdeconv can open."""


class UnsafeModelError(ModelError, ValueError):
    """Loading the model would execute code stored in the file (e.g. a Lambda layer)."""


class NoFeatureLayersError(ModelError, ValueError):
    """The model has no convolutional layer that could be deconvolved."""


class UnknownLayerError(ModelError, KeyError):
    """The requested layer is not one of the model's feature layers."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class FeatureIndexError(ModelError, IndexError):
    """A requested feature index is outside ``0 .. n_features - 1``."""


class UnsupportedGraphError(ModelError, ValueError):
    """The graph between the input and the layer holds an operation the engine cannot invert."""


# --- options, output, environment ----------------------------------------------
class InvalidOptionError(MirdeconvError, ValueError):
    """An option has a value outside the allowed set (method, target, ...)."""


class MemoryBudgetError(InvalidOptionError):
    """Even the smallest piece of the work does not fit in the memory budget."""


class OutputError(MirdeconvError, OSError):
    """The output folder cannot be written."""


class BackendError(MirdeconvError, RuntimeError):
    """TensorFlow or Essentia cannot be used in this process."""


class EssentiaImportOrderError(BackendError):
    """TensorFlow was imported before Essentia; Essentia cannot be loaded any more."""


class MissingExtraError(BackendError, ImportError):
    """An optional part of mirdeconv is needed but not installed (PyTorch and the ONNX
    converter: ``pip install "mirdeconv[torch]"``)."""


#: Lines of library error messages that say where, not what (TensorFlow's framing).
_WHERE = ("Graph execution error", "Detected at", "<stack traces", "[[", "File ", "Call arguments",
          "Traceback")


def message_of(exc: BaseException | str, limit: int = 300) -> str:
    """What went wrong, in one line: the first line of an exception's message that is not
    TensorFlow's framing ("Graph execution error:", "Detected at node ..."), or the
    exception's type when it says nothing; at most ``limit`` characters."""
    text = exc if isinstance(exc, str) else str(exc)
    lines = [ln.strip() for ln in text.splitlines()]
    said = [ln for ln in lines if ln and not ln.startswith(_WHERE)]
    if said:
        return said[0][:limit]
    return (type(exc).__name__ if not isinstance(exc, str) else "no message")[:limit]


class TruncationWarning(UserWarning):
    """A file decodes to less than its header declares (or its decoder fails before the end)
    and is used anyway: the shortfall is within the tolerance (2 % of the declared length or
    1 s, whichever is more), or ``allow_truncated`` asked for what decodes.  The message names
    the file and the shortfall in seconds and percent; :func:`mirdeconv.audio.decode` gives the
    same facts without warnings (``Decoded.truncated``, ``Decoded.shortfall_seconds``)."""


# --- renamed public names -------------------------------------------------------
def renamed(module: str, names: dict[str, str], namespace: dict):
    """A module ``__getattr__`` that still answers the old public ``names`` (old -> new) of
    ``module`` with the new name's object and a DeprecationWarning (kept for one release)."""
    import warnings

    def __getattr__(name: str):
        if name in names:
            warnings.warn(f"{module}.{name} is deprecated; use {module}.{names[name]}",
                          DeprecationWarning, stacklevel=2)
            return namespace[names[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return __getattr__
