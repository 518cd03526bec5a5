"""The ``mirdeconv`` command.

Its option flags (``--method``, ``--target``, ``--reading`` ...) and their help are generated
from :mod:`mirdeconv.options`, the one place where choices and defaults live.  The commands
are rows of :data:`COMMANDS`; their code is in :mod:`.features` (feature maps),
:mod:`.outputs` (a model's outputs) and :mod:`.tools` (models and the app).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from .. import backend
from ..errors import MirdeconvError, message_of
from ..store import remove_empty_folders
from . import atlas, features, outputs, tools
from .common import add_option_flags, model_args, no_args, options_from_args

__all__ = ["main", "console", "build_parser", "add_option_flags", "options_from_args", "COMMANDS"]

#: The commands: name -> (function, help, arguments).
COMMANDS: dict[str, tuple[Any, str, Any]] = {
    "layers": (features.cmd_layers, "list a model's feature layers", model_args),
    "deconvolve": (features.cmd_deconvolve, "deconvolve features of a layer for a track",
                   features.deconvolve_args),
    "auralise": (features.cmd_auralise, "auralise every feature of layers for many tracks (the "
                                        "batch job: audio, grids, index.parquet)",
                 features.auralise_args),
    "index": (features.cmd_index, "check (or --repair) a batch folder's index against its files",
              features.index_args),
    "probes": (features.cmd_probes, "write the probe stimuli (chords, drums, notes, onsets) with "
                                    "their annotations", features.probes_args),
    "analyse": (features.cmd_analyse, "describe and label every feature (probe set or tracks): "
                                      "features.parquet and an HTML report", features.analyse_args),
    "predict": (outputs.cmd_predict, "a model's top tags (or tempo, or pitch) for a track",
                outputs.predict_args),
    "explain": (outputs.cmd_explain, "which parts of a track made the model say a tag: the "
                                     "explanation's mask, picture, sound and complement",
                outputs.explain_args),
    "sanity": (outputs.cmd_sanity, "do the explanations and auralisations depend on what the "
                                   "model learned? cascading randomisation and selectivity: "
                                   "sanity.json, .md, .png", outputs.sanity_args),
    "atlas": (atlas.cmd_atlas, "what every feature and tag responds to across a collection, on "
                               "Dask: top-k excerpts, their deconvolutions and sounds",
              atlas.atlas_args),
    "zoo": (tools.cmd_zoo, "pretrained models (musicnn/vgg, MTT/MSD)", tools.zoo_args),
    "plugins": (tools.cmd_plugins, "every model plugin and adapter found, with its status", no_args),
    "models": (tools.cmd_models, "every model id that load_model and the CLI accept", no_args),
    "demo": (tools.cmd_demo, "deconvolve a demo track through Choi's vggnet5", tools.demo_args),
    "app": (tools.cmd_app, "serve the Streamlit app", tools.app_args),
}


def build_parser() -> argparse.ArgumentParser:
    verbose_help = ("let TensorFlow's and the dependencies' log lines through "
                    "(also MIRDECONV_VERBOSE=1)")
    common = Parser(add_help=False)   # --verbose after the command, too
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                        help=verbose_help)
    parser = Parser(
        prog="mirdeconv",
        description="See and hear what the feature maps of music CNNs respond to "
                    "(Zeiler-Fergus deconvolution, Choi et al. 2016).")
    parser.add_argument("--verbose", "-v", action="store_true", default=None, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, (func, text, add_args) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text, parents=[common])
        p.set_defaults(func=func)
        add_args(p)
    return parser

def console() -> None:
    """The ``mirdeconv`` console script: :func:`main`, and after Ctrl-C an exit at once (what
    the command had done is on disk by then; waiting for TensorFlow's and the libraries' own
    shut-down would add seconds)."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (``mirdeconv atlas: error: argument
    --top-k: must be an integer of at least 1, not '-3' (see --help)``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mirdeconv`` console script.

    Every argument is checked as it is parsed (numbers by :data:`mirdeconv.options.NUMBERS`,
    choices by their tables, feature selections by their syntax), before any work; an error
    is one line and exit code 2, and an output folder the command made is removed again when
    it fails before writing anything in it.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:                        # --help, or a refused argument
        return int(exc.code or 0)
    out = getattr(args, "out", None)
    made = None                                      # the first folder of --out not there yet
    if out is not None and not Path(out).exists():
        made = Path(out).absolute()
        while not made.parent.exists():
            made = made.parent
    code = 2
    try:
        backend.quiet_mode(args.verbose)
        code = int(args.func(args) or 0)
        return code
    except MirdeconvError as exc:
        print(f"mirdeconv: error: {message_of(exc, limit=2000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mirdeconv: interrupted", file=sys.stderr)
        code = 130
        return 130
    finally:
        if made is not None and code == 2:
            remove_empty_folders(made)
