"""The commands about a model's outputs: predict, explain, sanity."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from ..options import SIGNS, SoundOptions
from ..prediction import TOP
from .common import (
    _Deprecated,
    add_option_flags,
    model_args,
    number,
    open_model,
    options_from_args,
    plural,
    truncation_arg,
)


def cmd_predict(args: argparse.Namespace) -> int:
    from .. import audio as audio_mod
    from ..prediction import predict, summary

    y, sr = audio_mod.load(args.audio, allow_truncated=args.allow_truncated)
    model = open_model(args)
    act, labels, how = predict(model, y, sr)
    print(f"{model.name} on {args.audio} ({len(act)} patches, through {how}):")
    for name, value in summary(act, labels, model.task, args.top):
        print(f"  {name:<24} {value}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .. import audio as audio_mod
    from ..engine import spill_track
    from ..engine.memory import spill
    from ..explanations import ExplainOptions, explain
    from ..explanations.files import save_explanation
    from ..explanations.sound import check_top_percent
    from ..options import DeconvOptions
    from ..store import prepare_folder

    sound = options_from_args(SoundOptions, args)
    opts = options_from_args(ExplainOptions, args)
    if args.top_percent is not None:
        check_top_percent(args.top_percent)       # before any work
    prepare_folder(args.out)
    y, sr = audio_mod.load(args.audio, allow_truncated=args.allow_truncated)
    model = open_model(args)
    tags = [int(t) if t.isdigit() else t for t in args.tag] if args.tag else None
    rep = model.representation                 # the model's input, what is long spilled; the
    track = spill_track(rep.prepare(audio_mod.resample(y, sr, rep.sr), rep.sr),   # samples at
                        DeconvOptions().budget)                                   # their own rate
    y = spill(y)                                             # read back block by block
    expl = explain(model, track=track, tag=tags, options=opts, progress=True)
    figures = None
    if args.faithfulness:
        from ..explanations import faithfulness

        figures = faithfulness(model, expl, top_percent=args.top_percent).table()
    out = Path(args.out) / Path(args.audio).stem / opts.method
    files = save_explanation(expl, out, sound=sound, top_percent=args.top_percent, audio=y, sr=sr,
                             png=not args.no_png, figures=figures)
    for t, tag in enumerate(expl.tags):
        extra = ("" if expl.completeness is None
                 else f", completeness error {100 * expl.completeness[t]:.1f} %")
        print(f"{tag:<24} {expl.output} {expl.scores[t]:+.3f}, probability "
              f"{expl.probabilities[t]:.3f}{extra}")
        if figures:
            r = figures[t]
            print(f"{'':<24} masked in {r['p_in']:.3f}, out {r['p_out']:.3f}; AD {r['AD']:.1f}, "
                  f"AG {r['AG']:.1f}, FF {r['FF']:+.3f}; deletion {r['deletion']:.3f} (random "
                  f"{r['deletion_random']:.3f}), insertion {r['insertion']:.3f} (random "
                  f"{r['insertion_random']:.3f})")
    print(f"{expl.method} over {plural(expl.n_patches, 'patch')}".replace("patchs", "patches")
          + f": {plural(len(files), 'file')} in {out}")
    return 0


def predict_args(p: argparse.ArgumentParser) -> None:
    model_args(p)
    p.add_argument("audio", help="audio file")
    truncation_arg(p)
    p.add_argument("--top", type=number("top"), default=TOP, help=f"how many tags (default {TOP})")


def explain_args(p: argparse.ArgumentParser) -> None:
    from ..explanations import EXPLANATION_SOUND, ExplainOptions

    model_args(p)
    p.add_argument("audio", help="audio file")
    truncation_arg(p)
    p.add_argument("--tag", action="append",
                   help="a tag (label or class index) to explain; repeat for more (default: the "
                        "model's top tag)")
    add_option_flags(p, ExplainOptions)
    p.add_argument("--top-percent", type=number("top_percent"),
                   help="keep only the strongest PERCENT of the explanation (a binary mask)")
    sign = EXPLANATION_SOUND.sign                  # explanations' own sound, one default
    p.add_argument("--sign", choices=list(SIGNS), default=sign,
                   help=f"which part of the explanation is heard (default: {sign})")
    add_option_flags(p, SoundOptions, only=("output_sr", "normalize"))
    p.add_argument("--faithfulness", action="store_true",
                   help="feed the masked-in and masked-out track back; deletion and insertion "
                        "against a random order (printed, and kept in explanation.json)")
    p.add_argument("--no-png", action="store_true", help="no pictures")
    p.add_argument("--out", "-o", required=True, help="output folder")


def cmd_sanity(args: argparse.Namespace) -> int:
    from .. import audio as audio_mod
    from ..sanity import sanity_check, save_report
    from ..store import prepare_folder

    prepare_folder(args.out)
    y, sr = audio_mod.load(args.audio, allow_truncated=args.allow_truncated)
    model = open_model(args)
    methods = [m for m in args.methods.split(",") if m]
    report = sanity_check(model, y, sr, track_name=Path(args.audio).name,
                          seconds=None if args.seconds <= 0 else args.seconds, methods=methods,
                          tag=int(args.tag) if args.tag and args.tag.isdigit() else args.tag,
                          layer=args.layer, top=args.top,
                          selectivity_layers=[x for x in args.selectivity_layers.split(",") if x]
                          if args.selectivity_layers else None, seed=args.seed, progress=True)
    files = save_report(report, args.out, png=not args.no_png)
    for c in report.cascades():
        verdict = ", ".join(f"{m} {'passes' if ok else 'FAILS'}" for m, ok in c.passes().items())
        print(f"{c.kind}s ({c.subject}): {verdict}")
    for s in report.selectivity:
        m = s.summary()
        print(f"selectivity of {m['layer']}: median ratio {m['median_ratio']:.2f}, "
              f"{100 * m['rank1_share']:.0f} % re-excite their own feature most, median rank "
              f"{m['median_rank']:.0f} of {m['n_responding']}")
    print(f"{plural(len(files), 'file')} in {args.out}")
    return 0


def sanity_args(p: argparse.ArgumentParser) -> None:
    from ..sanity import EXPLANATION_METHODS, sanity_check
    from ..sanity.report import DEFAULT_SECONDS

    model_args(p)
    p.add_argument("audio", help="audio file")
    truncation_arg(p)
    def methods_text(text: str) -> str:
        unknown = [m for m in text.split(",") if m and m not in EXPLANATION_METHODS]
        if unknown or not text.strip(","):
            raise argparse.ArgumentTypeError(
                f"unknown method(s) {', '.join(unknown) or repr(text)}; use some of "
                f"{', '.join(EXPLANATION_METHODS)}")
        return text

    p.add_argument("--methods", default=",".join(EXPLANATION_METHODS), type=methods_text,
                   help="the class explanations' methods (default: all)")
    p.add_argument("--tag", help="the explained tag, a label or class index (default: the top tag)")
    p.add_argument("--layer", "-l", help="the deconvolved layer (default: the deepest)")
    top = inspect.signature(sanity_check).parameters["top"].default
    p.add_argument("--top", type=number("most_active"), default=top,
                   help=f"how many of its most active features (default {top}; formerly "
                        "--features)")
    p.add_argument("--features", dest="top", action=_Deprecated, new="--top",
                   type=number("most_active"), default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--selectivity-layers",
                   help="comma-separated layers whose auralisations are fed back (default: the "
                        "first and the deepest)")
    p.add_argument("--seconds", type=number("seconds"), default=DEFAULT_SECONDS,
                   help=f"the excerpt checked, from the start; 0: all (default {DEFAULT_SECONDS:g})")
    p.add_argument("--seed", type=number("seed"), default=0, help="the re-initialisation's seed")
    p.add_argument("--no-png", action="store_true", help="no picture")
    p.add_argument("--out", "-o", required=True, help="output folder")
