"""What the commands share: option flags generated from :mod:`mirdeconv.options`, the model's
arguments, and opening the model."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..adapters.onnx_model import ONNX_AXES
from ..engine.request import selection
from ..errors import MirdeconvError
from ..model import INPUT_AXES
from ..options import MIN_MEMORY, NUMBERS, DeconvOptions, choices, parse_size
from ..representations import presets

__all__ = ["add_option_flags", "options_from_args", "model_args", "model_options", "open_model",
           "selection_args", "truncation_arg", "no_args", "plural", "print_problems", "number",
           "feature_text", "representation_text"]


def _size(text: str) -> int:
    try:
        size = parse_size(text)
    except MirdeconvError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size < MIN_MEMORY:
        raise argparse.ArgumentTypeError(f"a budget of {text} cannot hold a piece of any track; "
                                         f"give at least {MIN_MEMORY >> 20}M")
    return size


def number(kind: str) -> Callable[[str], int | float]:
    """An argparse type: the text as the numeric setting ``kind`` of
    :data:`mirdeconv.options.NUMBERS` (``"must be an integer of at least 1, not '-3'"``)."""
    spec = NUMBERS[kind]

    def parse(text: str) -> int | float:
        try:
            return spec.parse(kind, text)
        except MirdeconvError:
            raise argparse.ArgumentTypeError(f"must be {spec.describe()}, not {text!r}") from None

    parse.__name__ = kind                       # argparse names the type in its messages
    return parse


def feature_text(text: str) -> str:
    """An argparse type: a feature selection whose syntax is checked (``0-7,12`` or ``all``;
    read once: :func:`mirdeconv.engine.request.selection` keeps what it read)."""
    try:
        selection(text)
    except MirdeconvError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def representation_text(text: str) -> str:
    """An argparse type: a representation preset or an existing JSON file."""
    if text in presets() or (text.endswith(".json") and Path(text).is_file()):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a preset ({', '.join(presets())}) nor an existing .json file")


class _Deprecated(argparse.Action):
    """A deprecated flag: still sets its option, and says once which flag replaces it (a line
    on stderr, and a DeprecationWarning for programs)."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any
                 ) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        text = f"{option_string} is deprecated; use {self.new}"
        print(f"mirdeconv: note: {text}", file=sys.stderr)
        warnings.warn(text, DeprecationWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


def add_option_flags(p: argparse.ArgumentParser, cls: type, only: tuple[str, ...] | None = None
                     ) -> None:
    """Add a flag per field of an options class (``--method``, ``--output-sr`` ...), with its
    choices, default and help from :mod:`mirdeconv.options` (and, for
    :class:`mirdeconv.explanations.ExplainOptions`, from the method table); a field's
    deprecated flags still work, hidden from ``--help``, and say what replaces them."""
    for c in choices(cls, only):
        names = [c.flag] + ([c.short] if c.short else [])
        kwargs: dict[str, Any] = {"dest": c.dest, "default": c.default}
        text = c.help
        if c.kind == "choice":
            kwargs["choices"] = list(c.table or ())
        elif c.kind == "number":
            kwargs["type"] = number(c.number or c.name)
        elif c.kind == "size":
            kwargs["type"] = _size
        if c.default is not None and c.kind != "size":
            text += f" (default: {c.default})"
        if c.aliases:
            text += f" (formerly {', '.join(c.aliases)})"
        p.add_argument(*names, help=text.replace("%", "%%"), **kwargs)
        for alias in c.aliases:
            p.add_argument(alias, action=_Deprecated, new=c.flag, help=argparse.SUPPRESS,
                           **{**kwargs, "default": argparse.SUPPRESS})


def options_from_args(cls: type, args: argparse.Namespace) -> Any:
    """The options object from the parsed flags (fields without a flag keep their default);
    the memory budget is checked here, before any work."""
    opts = cls(**{c.name: getattr(args, c.dest) for c in choices(cls) if hasattr(args, c.dest)})
    if isinstance(opts, DeconvOptions):
        _ = opts.budget          # a bad MIRDECONV_MEMORY is refused now
    return opts


def print_problems(problems: dict[str, list[str]]) -> int:
    """Print a check's problems by kind (20 of each at most); their number."""
    for kind, items in problems.items():
        for item in items[:20]:
            print(f"  {kind}: {item}")
        if len(items) > 20:
            print(f"  ... {len(items) - 20} more {kind}")
    return sum(map(len, problems.values()))


def plural(count: int, word: str) -> str:
    """``1 track``, ``2 tracks``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def model_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument("model", nargs="?" if optional else None,
                   help="model file (.keras, .h5, .pb), zoo name (mtt-musicnn, ...) or plugin id "
                        "(musicnn:mtt-vgg, see `mirdeconv models`)")
    p.add_argument("--representation", "-r", type=representation_text,
                   help=f"input representation: a preset ({', '.join(presets())}) or a JSON "
                        "file; default: NAME.mirdeconv.json beside the model")
    p.add_argument("--input-axes", choices=sorted(set(INPUT_AXES) | set(ONNX_AXES)),
                   help="model input layout (N batch, C channel, F bands, T frames; PyTorch and "
                        "ONNX spectrogram nets: NCFT)")
    p.add_argument("--input", help="input tensor of a frozen graph (.pb)")
    p.add_argument("--output", help="the prediction tensor of a frozen graph (.pb)")
    p.add_argument("--algorithm", help="Essentia's input algorithm of a frozen graph "
                                       "(TensorflowPredictMusiCNN, TempoCNN, ...)")
    p.add_argument("--input-length", type=number("input_length"),
                   help="frames per input patch, when the model's input leaves it free")
    p.add_argument("--adapter", help="open the model with this adapter (keras, essentia, pb, ...)")
    p.add_argument("--allow-unsafe", action="store_true",
                   help="let Lambda layers in a Keras file run (only for files you trust)")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """load_model options from the command line's model arguments."""
    opts: dict[str, Any] = {"representation": args.representation}
    for key in ("input_axes", "input", "output", "algorithm", "input_length", "adapter"):
        if getattr(args, key):
            opts[key] = getattr(args, key)
    if args.allow_unsafe:
        opts["allow_unsafe"] = True
    return opts


def open_model(args: argparse.Namespace) -> Any:
    from ..loading import load_model

    return load_model(args.model, **model_options(args))


def selection_args(p: argparse.ArgumentParser, many_layers: bool) -> None:
    if many_layers:
        p.add_argument("--layers", default="all",
                       help="'all' or comma-separated layer names (default: all)")
    else:
        p.add_argument("--layer", "-l", required=True, help="layer name (see `mirdeconv layers`)")
    p.add_argument("--features", "-f", default="all", type=feature_text,
                   help="e.g. 0-63, 3,5,10-12 or all (default: all)")


def truncation_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-truncated", action="store_true",
                   help="use what decodes of a file that is cut short (refused by default)")


def no_args(p: argparse.ArgumentParser) -> None:
    pass
