"""Every choice and default of mirdeconv in one place, validated once; and the environment.

Two frozen option objects travel through the library, the batch job, the command line and
the app:

* :class:`DeconvOptions`: how a layer is deconvolved (method, target, mode, precision,
  memory budget);
* :class:`SoundOptions`: how a deconvolution becomes sound (reading, sign, output rate,
  normalisation, file format).

A third, :class:`mirdeconv.explanations.ExplainOptions` (how a class explanation is made),
is built the same way beside the explanations' own tables, which this module cannot import;
:func:`choices` reads all three.

Their choices come from the tables below (name -> what it means); the command line's flags
and ``--help``, and the app's pickers, are generated from the same tables, so a new choice
is one table row.  The methods are data, as in captum where deconvnet and guided backprop
are one flag on one class: each :class:`Method` says whether the backward signal is
rectified at a non-linearity and whether it is multiplied by the non-linearity's
derivative.

:func:`environment` is the one place that reads mirdeconv's environment variables
(``MIRDECONV_*``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FeatureIndexError, InvalidOptionError

__all__ = [
    "Method", "METHODS", "TARGETS", "MODES", "PRECISIONS", "READINGS", "SIGNS", "OUTPUT_RATES",
    "NORMALIZATIONS", "FORMATS", "DEFAULT_MEMORY", "default_memory", "machine_memory",
    "UPLOAD_LIMIT_MB", "UPLOAD_LIMIT_MINUTES",
    "DeconvOptions", "SoundOptions",
    "parse_features", "feature_ranges", "parse_size", "Environment", "environment", "env_value", "Choice",
    "Number", "NUMBERS", "check_number", "MIN_MEMORY",
    "choices", "check_choice", "resolve",
]


@dataclass(frozen=True)
class Method:
    """A backward rule at every non-linearity ``y = f(x)`` on the way down.

    Attributes
    ----------
    name : str
    rectify : bool
        The backward signal ``g`` is rectified, ``relu(g)`` (Zeiler & Fergus).
    derivative : bool
        The signal is multiplied by the forward derivative ``f'(x)`` (the chain rule).
    description : str
    """

    name: str
    rectify: bool
    derivative: bool
    description: str

    @property
    def formula(self) -> str:
        """The rule as a formula, e.g. ``relu(g) * f'(x)``."""
        g = "relu(g)" if self.rectify else "g"
        return f"{g} * f'(x)" if self.derivative else g


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("deconvnet", True, False, "the backward signal is rectified (Zeiler & Fergus; Choi)"),
    Method("guided", True, True, "guided backprop (Springenberg et al.)"),
    Method("saliency", False, True, "the plain gradient (Simonyan et al.)"),
)}
TARGETS: dict[str, str] = {
    "map": "the feature's whole activation map, every other map zero (Choi; Zeiler & Fergus)",
    "max": "only the feature's strongest unit over the track",
}
MODES: dict[str, str] = {
    "auto": "the whole track at once when the graph allows it, else patches",
    "whole": "the whole track through the graph at once (fully convolutional along time)",
    "patches": "patches of the model's input length, 50 % overlap, overlap-added",
}
PRECISIONS: dict[str, str] = {
    "float32": "float32 backward pass",
    "bfloat16": "bfloat16 backward pass: about 2x faster convolutions on CPUs with "
                "AMX/AVX-512-BF16, about 3 significant digits",
}
READINGS: dict[str, str] = {
    "mask": "the deconvolution multiplies the STFT as it is (Choi)",
    "magnitude": "the deconvolution is read as a (compressed) spectrogram, its compression "
                 "inverted, and played with the original phase",
}
SIGNS: dict[str, str] = {
    "signed": "negative values flip the phase (Choi)",
    "positive": "negative values dropped",
    "absolute": "absolute values",
}
OUTPUT_RATES: dict[str, str] = {
    "track": "the track's own rate (the mask interpolated onto its STFT)",
    "model": "the model's rate",
}
NORMALIZATIONS: dict[str, str] = {
    "peak": "peak 0.99",
    "loudness": "-23 LUFS (ITU-R BS.1770), never above peak 0.99",
    "none": "as computed",
}
FORMATS: dict[str, str] = {"wav": "16-bit WAV", "flac": "16-bit FLAC"}

#: Largest upload the app takes, in MB (Streamlit enforces it: ``.streamlit/config.toml`` for
#: ``streamlit run streamlit_app.py``, a flag for ``mirdeconv app``; a test keeps them equal).
UPLOAD_LIMIT_MB = 50
#: Longest track the app takes as an upload, in minutes, unless ``MIRDECONV_UPLOAD_MINUTES``.
UPLOAD_LIMIT_MINUTES = 10.0

def machine_memory() -> int | None:
    """Bytes of RAM this process may use: the machine's, or its cgroup's limit if lower
    (None when neither can be read)."""
    found = []
    try:
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            found.append(int(limit))
    except OSError:
        pass
    return min(found) if found else None


def default_memory(ram: int | None = None) -> int:
    """The default budget: a fifth of the RAM (:func:`machine_memory`), in steps of 256 MiB,
    between 512 MiB and 4 GiB (4 GiB when the RAM is unknown)."""
    ram = machine_memory() if ram is None else ram
    if ram is None:
        return 4 << 30
    step = 256 << 20
    return int(min(4 << 30, max(512 << 20, ram // 5 // step * step)))


#: The smallest memory budget the command line takes (``--memory``): below it not even a short
#: layer's piece of a real model fits, so it is refused before any work.
MIN_MEMORY = 64 << 20

#: The memory budget, in bytes, unless overridden (``memory=``, ``--memory``,
#: ``MIRDECONV_MEMORY``): :func:`default_memory` of this machine (4 GiB with 24 GB of RAM).
DEFAULT_MEMORY = default_memory()


def _choice(table: Mapping[str, Any], label: str, short: str | None = None) -> dict[str, Any]:
    return {"choices": table, "label": label, "short": short}


def _check_choices(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        if "choices" in f.metadata:
            check_choice(f.name, getattr(obj, f.name), f.metadata["choices"])


@dataclass(frozen=True)
class DeconvOptions:
    """How a layer is deconvolved.

    Parameters
    ----------
    method : {"deconvnet", "guided", "saliency"}
        How the backward pass treats the non-linearities (:data:`METHODS`).
    target : {"map", "max"}
        Seed: the feature's whole map (Zeiler & Fergus, Choi) or its strongest unit.
    mode : {"auto", "whole", "patches"}
        Whole track at once, patches of the model's input length, or whichever fits.
    precision : {"float32", "bfloat16"}
        Arithmetic of the backward pass (the forward pass is always float32).
    memory : int, str or None
        The memory budget of the work (an int, or a size such as ``"2G"``): one piece of a
        track (a chunk or a batch of patches) holds at most an eighth of it, and features go
        backward in groups that fit it (:mod:`mirdeconv.engine.memory`); None:
        ``MIRDECONV_MEMORY`` or :data:`DEFAULT_MEMORY`.

    Raises
    ------
    InvalidOptionError
        A value outside its choices, or a memory budget that is not a positive integer.
    """

    method: str = field(default="deconvnet", metadata=_choice(METHODS, "Method", "-m"))
    target: str = field(default="map", metadata={**_choice(TARGETS, "Target", "-t"), "names": {
        "map": "whole feature map", "max": "strongest unit"}})
    mode: str = field(default="auto", metadata=_choice(MODES, "Mode"))
    precision: str = field(default="float32", metadata=_choice(PRECISIONS, "Precision"))
    memory: int | None = field(default=None, metadata={
        "label": "Memory", "kind": "size", "help": f"memory budget of the work (e.g. 2G; default: "
                                   f"MIRDECONV_MEMORY or {DEFAULT_MEMORY / 2**30:g}G, from this "
                                   "machine's RAM)"})

    def __post_init__(self) -> None:
        _check_choices(self)
        if isinstance(self.memory, str):
            object.__setattr__(self, "memory", parse_size(self.memory))
        if self.memory is not None and not (
                isinstance(self.memory, int | np.integer) and self.memory > 0):
            raise InvalidOptionError(f"memory must be a positive number of bytes; got {self.memory!r}")


    @property
    def method_row(self) -> Method:
        """The :class:`Method` of :attr:`method` (its row of :data:`METHODS`)."""
        return METHODS[self.method]

    @property
    def rule(self) -> Method:
        """Deprecated name of :attr:`method_row` (a DeprecationWarning)."""
        warnings.warn("DeconvOptions.rule is now DeconvOptions.method_row", DeprecationWarning,
                      stacklevel=2)
        return self.method_row

    @property
    def budget(self) -> int:
        """The memory budget in bytes (``None``: ``MIRDECONV_MEMORY``, else the default).

        Raises
        ------
        InvalidOptionError
            ``MIRDECONV_MEMORY`` is not a size.
        """
        if self.memory is not None:
            return int(self.memory)
        env = environment().memory
        if not env:
            return DEFAULT_MEMORY
        try:
            return parse_size(env)
        except InvalidOptionError as exc:
            raise InvalidOptionError(f"{ENV_PREFIX}MEMORY: {exc}") from None

    def key(self) -> dict[str, str]:
        """What changes the result (the memory budget does not)."""
        return {"method": self.method, "target": self.target, "mode": self.mode,
                "precision": self.precision}

    def replace(self, **changes: Any) -> DeconvOptions:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SoundOptions:
    """How deconvolved features become sound (see :mod:`mirdeconv.auralisation`).

    Parameters
    ----------
    reading : {"mask", "magnitude"}
    sign : {"signed", "positive", "absolute"}
    output_sr : {"track", "model"}
    normalize : {"peak", "loudness", "none"}
    format : {"wav", "flac"}
        File format when written.

    Raises
    ------
    InvalidOptionError
        A value outside its choices.
    """

    reading: str = field(default="mask", metadata=_choice(READINGS, "Reading"))
    sign: str = field(default="signed", metadata=_choice(SIGNS, "Sign"))
    output_sr: str = field(default="track", metadata=_choice(OUTPUT_RATES, "Output rate"))
    normalize: str = field(default="peak", metadata=_choice(NORMALIZATIONS, "Normalise"))
    format: str = field(default="wav", metadata=_choice(FORMATS, "Format"))

    def __post_init__(self) -> None:
        _check_choices(self)

    def key(self) -> dict[str, str]:
        """Every field (all of them change the output)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> SoundOptions:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def resolve(cls: type, options: Any, given: Mapping[str, Any]) -> Any:
    """An options object from ``options`` (or the defaults) and keyword values.

    ``given`` holds the keyword arguments of a public function whose defaults are the
    option class's own; when ``options`` is also given, a keyword that differs from its
    default is a contradiction and raises.
    """
    if options is None:
        return cls(**given)
    if not isinstance(options, cls):
        raise InvalidOptionError(f"options must be a {cls.__name__}; got {type(options).__name__}")
    defaults = cls()
    clash = [k for k, v in given.items() if v != getattr(defaults, k)]
    if clash:
        raise InvalidOptionError(
            f"give {', '.join(clash)} either as keyword or in the {cls.__name__}, not both")
    return options


# -- numbers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Number:
    """What a numeric setting takes: an integer or any real number, and its bounds.

    Attributes
    ----------
    integer : bool
        Only whole numbers (an ``int``; never ``True``, never ``1.5``).
    low, high : float or None
        Bounds (None: none).
    low_open, high_open : bool
        The bound itself is excluded.
    note : str
        What a special value means, for people (``"0: the whole track"``).
    """

    integer: bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def describe(self) -> str:
        """``"an integer of at least 1"``, ``"a number above 0 and at most 100"`` ..."""
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        what = "an integer" if self.integer else "a number"
        bounds = " and ".join(parts)
        if bounds.startswith("at "):
            bounds = "of " + bounds
        return " ".join(x for x in (what, bounds) if x) + (f" ({self.note})" if self.note else "")

    def check(self, name: str, value: Any) -> int | float:
        """``value`` if it is such a number, else an error naming ``name``.

        Raises
        ------
        InvalidOptionError
        """
        ok = not isinstance(value, bool | np.bool_) and isinstance(
            value, (int, np.integer) if self.integer else (int, float, np.integer, np.floating))
        if ok:
            v = int(value) if self.integer else float(value)
            ok = bool(np.isfinite(v)) and not (
                self.low is not None and (v < self.low or (self.low_open and v == self.low))) and not (
                self.high is not None and (v > self.high or (self.high_open and v == self.high)))
        if not ok:
            raise InvalidOptionError(f"{name} must be {self.describe()}; got {value!r}")
        return v

    def parse(self, name: str, text: str) -> int | float:
        """A command line's text as such a number (see :meth:`check`)."""
        try:
            value: Any = int(text) if self.integer else float(text)
        except ValueError:
            raise InvalidOptionError(f"{name} must be {self.describe()}; got {text!r}") from None
        return self.check(name, value)


#: Every numeric setting of the library and the command line, by name.
NUMBERS: dict[str, Number] = {
    "top_k": Number(True, 1),
    "excerpt": Number(False, 0, low_open=True),
    "workers": Number(True, 1),
    "jobs": Number(True, 1),
    "most_active": Number(True, 1),
    "seconds": Number(False, 0, note="0: the whole track"),
    "steps": Number(True, 1),
    "copies": Number(True, 1),
    "noise": Number(False, 0),
    "seed": Number(True, 0),
    "top": Number(True, 1),
    "top_percent": Number(False, 0, 100, low_open=True),
    "sample_rate": Number(True, 1000, 768000),
    "input_length": Number(True, 1),
    "port": Number(True, 1, 65535),
    "demo_seconds": Number(False, 1, 600),
}


def check_number(kind: str, value: Any, name: str | None = None) -> int | float:
    """``value`` checked as the numeric setting ``kind`` of :data:`NUMBERS` (errors name it
    ``name``, default ``kind``).

    Raises
    ------
    InvalidOptionError
    """
    return NUMBERS[kind].check(name or kind, value)


# -- feature selections ---------------------------------------------------------------
def parse_features(features: Any, n_features: int) -> list[int]:
    """Turn a feature selection into a list of indices.

    Parameters
    ----------
    features : None, int, iterable of int, or str
        ``None`` or ``"all"``: every feature; an int; a list; or a string such as
        ``"0-7,12,20-23"`` (ranges inclusive).
    n_features : int
        The layer's number of features.

    Raises
    ------
    FeatureIndexError
        An index outside ``0 .. n_features - 1`` (checked before any range is built).
    InvalidOptionError
        A string that cannot be parsed, or an empty selection.
    """
    if features is None or (isinstance(features, str) and features.strip().lower() == "all"):
        return list(range(n_features))
    if isinstance(features, str):
        out = _parse_feature_string(features, n_features)
    elif isinstance(features, bool | np.bool_):
        raise InvalidOptionError(f"features must be indices (integers), got {features!r}")
    elif isinstance(features, int | np.integer):
        out = [int(features)]
    else:
        try:
            items = list(features)
        except TypeError:
            raise InvalidOptionError(f"features must be indices (integers), got {features!r}") from None
        bad = [f for f in items if isinstance(f, bool | np.bool_) or not isinstance(f, int | np.integer)]
        if bad:
            raise InvalidOptionError(f"features must be indices (integers), got {bad[0]!r} in {features!r}")
        out = [int(f) for f in items]
    if not out:
        raise InvalidOptionError("the feature selection is empty")
    for f in out:
        _check_index(f, n_features)
    return out


_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def feature_ranges(text: str) -> list[tuple[int, int]]:
    """The ``(first, last)`` ranges of a feature selection string such as ``"0-7,12"``,
    its syntax checked without any layer (``"all"``: no ranges).  No range is built, so
    ``"0-99999999999999999999"`` costs nothing here; :func:`parse_features` checks it
    against the layer.

    Raises
    ------
    InvalidOptionError
        Naming the token that cannot be read.
    """
    if text.strip().lower() == "all":
        return []
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        m = _RANGE.match(part)
        if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise InvalidOptionError(
                f"cannot read {part!r} in the feature selection {text!r}: use e.g. '0-63' or "
                "'3,5,10-12'")
        lo = int(m.group(1))
        out.append((lo, int(m.group(2)) if m.group(2) is not None else lo))
    if not out:
        raise InvalidOptionError("the feature selection is empty")
    return out


def _parse_feature_string(text: str, n_features: int) -> list[int]:
    return range_indices(feature_ranges(text), n_features)


def range_indices(ranges: Iterable[tuple[int, int]], n_features: int) -> list[int]:
    """The indices of inclusive ``(first, last)`` ranges (:func:`feature_ranges`) of a layer
    with ``n_features`` features.

    Raises
    ------
    FeatureIndexError
        A bound outside ``0 .. n_features - 1``.
    """
    out: list[int] = []
    for lo, hi in ranges:
        _check_index(lo, n_features)
        _check_index(hi, n_features)
        out.extend(range(lo, hi + 1))
    return out


def _check_index(f: int, n_features: int) -> None:
    if not 0 <= f < n_features:
        raise FeatureIndexError(
            f"feature index {f} is out of range: this layer has {n_features} features "
            f"(0-{n_features - 1})")


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """``"2G"``, ``"512M"``, ``"4GiB"``, ``"1073741824"`` -> bytes (binary units).

    Raises
    ------
    InvalidOptionError
        Not a positive size.
    """
    if isinstance(text, int | np.integer):
        value = int(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
        if m is None:
            raise InvalidOptionError(f"cannot read the size {text!r}: use e.g. 2G or 512M")
        value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise InvalidOptionError(f"a size must be positive; got {text!r}")
    return value


# -- the environment ---------------------------------------------------------------------
ENV_PREFIX = "MIRDECONV_"


@dataclass(frozen=True)
class Environment:
    """mirdeconv's environment variables, read at one moment.

    Attributes
    ----------
    cache : Path or None
        ``MIRDECONV_CACHE``: the zoo's cache folder (None: the user's cache folder).
    musicnn_wheel : Path or None
        ``MIRDECONV_MUSICNN_WHEEL``: a local musicnn 0.1.0 wheel for the zoo.
    plugin_path : tuple of Path
        ``MIRDECONV_PLUGIN_PATH``: folders of plugin files (``os.pathsep``-separated).
    allow_model_upload : bool
        ``MIRDECONV_ALLOW_MODEL_UPLOAD=1``: the app offers model uploads.
    upload_minutes : float
        ``MIRDECONV_UPLOAD_MINUTES``: the longest track the app takes as an upload
        (default :data:`UPLOAD_LIMIT_MINUTES`).
    verbose : bool
        ``MIRDECONV_VERBOSE=1``: TensorFlow's and dependencies' log lines reach the terminal.
    memory : str or None
        ``MIRDECONV_MEMORY`` (e.g. ``2G``) as written: the default memory budget, read by
        :attr:`DeconvOptions.budget` (which refuses a value that is not a size).
    atlas_dir : Path or None
        ``MIRDECONV_ATLAS_DIR``: the folder whose atlases (``mirdeconv atlas --out``) the
        app's Atlas view opens (the page never takes a path).
    dask_scheduler : str or None
        ``DASK_SCHEDULER_ADDRESS`` (Dask's own variable): the cluster the atlas runs on when
        no ``scheduler`` is given.
    """

    cache: Path | None = None
    musicnn_wheel: Path | None = None
    plugin_path: tuple[Path, ...] = ()
    allow_model_upload: bool = False
    upload_minutes: float = UPLOAD_LIMIT_MINUTES
    verbose: bool = False
    memory: str | None = None
    atlas_dir: Path | None = None
    dask_scheduler: str | None = None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _minutes(value: str | None) -> float:
    if value is None:
        return UPLOAD_LIMIT_MINUTES
    try:
        minutes = float(value)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise InvalidOptionError(f"MIRDECONV_UPLOAD_MINUTES must be a positive number of "
                                 f"minutes, got {value!r}")
    return minutes


def _paths(value: str | None) -> tuple[Path, ...]:
    return tuple(Path(p.strip()) for p in (value or "").split(os.pathsep) if p.strip())


def environment(environ: Mapping[str, str] | None = None) -> Environment:
    """Read mirdeconv's environment variables now (``os.environ`` by default)."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(ENV_PREFIX + name)
        return value if value not in (None, "") else None

    return Environment(
        cache=Path(get("CACHE")) if get("CACHE") else None,
        musicnn_wheel=Path(get("MUSICNN_WHEEL")) if get("MUSICNN_WHEEL") else None,
        plugin_path=_paths(get("PLUGIN_PATH")),
        allow_model_upload=_flag(get("ALLOW_MODEL_UPLOAD")),
        upload_minutes=_minutes(get("UPLOAD_MINUTES")),
        verbose=_flag(get("VERBOSE")),
        memory=get("MEMORY"),
        atlas_dir=Path(get("ATLAS_DIR")) if get("ATLAS_DIR") else None,
        dask_scheduler=env.get("DASK_SCHEDULER_ADDRESS") or None,
    )


@contextmanager
def environment_kept(*names: str) -> Iterator[None]:
    """Put the process's environment variables ``names`` back as they were once the block
    ends (a library that sets them when imported: onnx2tf sets ``TF_USE_LEGACY_KERAS``)."""
    saved = {k: os.environ.get(k) for k in names}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def env_value(name: str) -> str | None:
    """``MIRDECONV_<NAME>`` for settings that plugins define (e.g. ``CHOI2016_WEIGHTS``)."""
    value = os.environ.get(ENV_PREFIX + name)
    return value if value else None


@dataclass(frozen=True)
class Choice:
    """One option of an options class as the front ends show it (a flag, a picker).

    Attributes
    ----------
    name : str
        The field (``output_sr``).
    label : str
        For people (``Output rate``).
    default : Any
    table : dict or None
        Choice -> what it means (None: a free value, such as the memory budget).
    short : str or None
        A short flag (``-m``).
    help : str
        Every choice with its meaning, or the field's own help.
    names : dict
        Short names of some choices for pickers (``{"map": "whole feature map"}``).
    kind : {"choice", "number", "size", "text"}
        What the value is: one of ``table``, a number of :data:`NUMBERS` (``number``), a
        size such as ``2G``, or free text (a layer's name).
    number : str or None
        The :data:`NUMBERS` entry of a number.
    flag : str
        The command line's flag (``--output-sr``; a field's metadata may name another).
    aliases : tuple of str
        Deprecated flags that still work (and say so).
    """

    name: str
    label: str
    default: Any
    table: Mapping[str, Any] | None
    short: str | None
    help: str
    names: Mapping[str, str] = field(default_factory=dict)
    kind: str = "choice"
    number: str | None = None
    flag: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        """Where argparse keeps the flag's value (``--explained-output``: ``explained_output``;
        not the field's name when another flag of the command has it)."""
        return self.flag.lstrip("-").replace("-", "_")


def choices(cls: type, only: Iterable[str] | None = None) -> list[Choice]:
    """The options of ``cls`` (:class:`DeconvOptions`, :class:`SoundOptions`,
    :class:`mirdeconv.explanations.ExplainOptions`) in field order, for the CLI's flags and the
    app's pickers."""
    wanted = None if only is None else set(only)
    out = []
    for f in dataclasses.fields(cls):
        if wanted is not None and f.name not in wanted:
            continue
        meta, table = f.metadata, f.metadata.get("choices")
        text = meta.get("help") or "; ".join(
            f"{k}: {getattr(v, 'description', v)}" for k, v in (table or {}).items())
        if callable(text):                        # read from a table now (a row added later)
            text = text()
        kind = ("choice" if table is not None else "number" if "number" in meta
                else meta.get("kind", "size"))
        out.append(Choice(f.name, meta.get("label", f.name), f.default, table, meta.get("short"),
                          text, meta.get("names", {}), kind, meta.get("number"),
                          meta.get("flag", "--" + f.name.replace("_", "-")),
                          tuple(meta.get("aliases", ()))))
    return out


def check_choice(name: str, value: Any, table: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidOptionError` unless ``value`` is one of ``table``'s keys."""
    if value not in table:
        raise InvalidOptionError(f"{name} must be one of {', '.join(table)}; got {value!r}")
