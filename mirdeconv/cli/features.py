"""The commands about feature maps: layers, deconvolve, auralise (the batch job), index,
probes, analyse."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..options import DeconvOptions, SoundOptions
from ..probes import PROBE_SR
from .common import (
    add_option_flags,
    model_args,
    model_options,
    number,
    open_model,
    options_from_args,
    plural,
    print_problems,
    selection_args,
    truncation_arg,
)


def cmd_layers(args: argparse.Namespace) -> int:
    model = open_model(args)
    layers = model.layers           # any error before the table starts
    spf = model.representation.seconds_per_frame
    unit = "samples" if model.representation.kind == "waveform" else "frames"
    print(f"{model.name}: {model.representation.describe()}, input {model.input_axes}"
          f"{'' if model.input_length is None else f', {model.input_length} {unit} per patch'}")
    w = max([28, *(len(li.name) + 1 for li in layers)])
    rf = f"rf {unit}"
    print(f"{'layer':<{w}} {'features':>8} {'axes':>6} {rf:>10} {'rf s':>6} "
          f"{'rf bins':>7} {'whole track':>11}")
    for li in layers:
        bins = "-" if li.receptive_field[1] is None else str(li.receptive_field[1])
        print(f"{li.name:<{w}} {li.n_features:>8} {li.axes:>6} {li.receptive_field[0]:>10} "
              f"{li.receptive_field[0] * spf:>6.2f} {bins:>7} {'yes' if li.time_agnostic else 'no':>11}")
    return 0


def cmd_deconvolve(args: argparse.Namespace) -> int:
    from .. import audio as audio_mod
    from ..engine import deconvolve_request, resolve_request, selection, spill_track
    from ..export import save_result
    from ..store import prepare_folder

    opts = options_from_args(DeconvOptions, args)
    features = selection(args.features)           # all of this before the model loads
    prepare_folder(args.out)
    loaded = [audio_mod.load(args.audio, allow_truncated=args.allow_truncated)]
    model = open_model(args)

    def track() -> Any:      # the samples at the model's rate only (the file's dropped as they
        y, sr = loaded.pop()                # are resampled), and what the masks do not need
        rate = model.representation.sr      # spilled: a long track's size is not kept
        y = audio_mod.resample(y, sr, rate)
        return spill_track(model.representation.prepare(y, rate), opts.budget)

    req = resolve_request(model, layer=args.layer, features=features, options=opts, track=track,
                  probe_short=True)
    info = req.layer
    print(req.plan.describe(), file=sys.stderr)    # refuses (exit 2) when one piece cannot fit
    res = deconvolve_request(req, progress=True)
    out = prepare_folder(Path(args.out) / Path(args.audio).stem / info.name)
    files = save_result(res, out, png=not args.no_png, identity=model.identity(), progress=True)
    n_dead = int(res.dead.sum())
    print(f"{len(res.features)} features of {info.name} ({opts.method}, {opts.target}, "
          f"{res.mode}): {len(files)} files in {out}" + (f"; {n_dead} dead" if n_dead else ""))
    return 0


def cmd_auralise(args: argparse.Namespace) -> int:
    from ..batch import BatchSettings, run_batch

    layers = "all" if args.layers == "all" else tuple(x for x in args.layers.split(",") if x)
    settings = BatchSettings(layers=layers, features=args.features,
                             deconv=options_from_args(DeconvOptions, args),
                             sound=options_from_args(SoundOptions, args),
                             analyse=not args.no_analysis, allow_truncated=args.allow_truncated)
    summary = run_batch(args.model, args.tracks, args.out, settings, jobs=args.jobs,
                        progress=True, model_options=model_options(args))
    print(f"{plural(summary.n_tracks, 'track')}: {plural(summary.n_layers_done, 'layer')} auralised, "
          f"{summary.n_layers_skipped} already complete, {plural(summary.n_files, 'file')} written "
          f"in {summary.seconds:.1f} s -> {summary.out / 'index.parquet'}")
    for f in summary.failures:
        print(f"  failed: {f['track']}{' / ' + f['layer'] if f['layer'] else ''}: {f['error']}",
              file=sys.stderr)
    if summary.exit_code:
        print("mirdeconv: " + ("nothing could be done" if summary.exit_code == 2 else
                               f"{plural(len(summary.failures), 'failure')}") + " (exit code "
              f"{summary.exit_code}; see {summary.out / 'summary.json'})", file=sys.stderr)
    return summary.exit_code


def cmd_index(args: argparse.Namespace) -> int:
    from ..runstore import check_index, repair_index

    out = Path(args.folder)
    if not (out / "index.parquet").is_file() and not any(out.glob("*/*/_done.json")):
        print(f"mirdeconv: error: {out} is not a batch output folder (no index.parquet, no "
              "completed layers)", file=sys.stderr)
        return 2
    if args.repair:
        print(f"{out / 'index.parquet'}: rebuilt from the files, {plural(repair_index(out), 'row')}")
    bad = print_problems(check_index(out))
    print(f"{out / 'index.parquet'}: " + ("every file listed, every listed file on disk" if not bad
                                         else f"{plural(bad, 'problem')} (--repair rebuilds it)"))
    return 1 if bad else 0


def cmd_probes(args: argparse.Namespace) -> int:
    from ..probes import FAMILIES, probe_set, write_probes

    families = FAMILIES if args.families == "all" else tuple(x for x in args.families.split(",") if x)
    clips = probe_set(sr=args.sr, families=families, renderer=args.renderer)
    files = write_probes(clips, args.out, annotations=args.annotations, progress=True)
    print(f"{len(clips)} probe clips ({', '.join(families)}) at {args.sr} Hz: {len(files)} files "
          f"in {args.out} (list: probes.csv)")
    return 0


def cmd_analyse(args: argparse.Namespace) -> int:
    from ..analysis import analyse
    from ..engine import selection
    from ..report import write_report

    opts, sound = options_from_args(DeconvOptions, args), options_from_args(SoundOptions, args)
    selection(args.features)                      # before the model loads
    model = open_model(args)
    layers = "all" if args.layers == "all" else [x for x in args.layers.split(",") if x]
    features = None if args.features == "all" else args.features
    result = analyse(model, args.tracks or None, layers=layers, features=features, options=opts,
                     sound=sound, probe_sr=args.probe_sr, progress=True)
    files = write_report(result, model, args.out, progress=True)
    feats = result.per_feature
    print(f"{plural(len(feats), 'feature')} of {plural(len(result.settings['layers']), 'layer')} on "
          f"{plural(len(result.tracks), 'track')} -> {files['features']}, {files['report']}")
    for layer, counts in feats.groupby("layer", sort=False)["primary"]:
        top = counts.value_counts().head(4)
        print(f"  {layer:<24} " + ", ".join(f"{k} {v}" for k, v in top.items()))
    detected = sum(t["onsets_from"] == "librosa" for t in result.tracks)
    if detected:
        print(f"  reference onsets of {detected} track(s) were detected by librosa (no annotations)")
    return 0


def deconvolve_args(p: argparse.ArgumentParser) -> None:
    model_args(p)
    p.add_argument("audio", help="audio file (wav, flac, ogg, mp3, ...)")
    truncation_arg(p)
    selection_args(p, many_layers=False)
    add_option_flags(p, DeconvOptions)
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--no-png", action="store_true", help="write only the .npy masks")


def auralise_args(p: argparse.ArgumentParser) -> None:
    model_args(p)
    p.add_argument("tracks", nargs="+", help="audio files")
    truncation_arg(p)
    selection_args(p, many_layers=True)
    add_option_flags(p, DeconvOptions)
    add_option_flags(p, SoundOptions)
    p.add_argument("--no-analysis", action="store_true",
                   help="leave the descriptor and label columns of the index empty")
    p.add_argument("--jobs", "-j", type=number("jobs"), default=1, help="worker processes")
    p.add_argument("--out", "-o", required=True, help="output folder")


def index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a batch output folder (mirdeconv auralise --out)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="compare the index with the files (default)")
    g.add_argument("--repair", action="store_true", help="rebuild the index from the files")


def probes_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--sr", type=number("sample_rate"), default=PROBE_SR,
                   help=f"sample rate (default {PROBE_SR})")
    p.add_argument("--families", default="all", help="'all' or some of chords,drums,notes,onsets")
    p.add_argument("--renderer", default="synth", choices=["synth", "soundfont"],
                   help="synthesised instruments, or the General MIDI soundfont via fluidsynth")
    p.add_argument("--annotations", default="jams", choices=["jams", "json"])


def analyse_args(p: argparse.ArgumentParser) -> None:
    model_args(p)
    p.add_argument("tracks", nargs="*",
                   help="audio files (annotations from NAME.jams beside them; default: the probe set)")
    selection_args(p, many_layers=True)
    add_option_flags(p, DeconvOptions)
    add_option_flags(p, SoundOptions, only=("reading", "sign"))
    p.add_argument("--probe-sr", type=number("sample_rate"), default=PROBE_SR,
                   help=f"sample rate of the probe set (default {PROBE_SR})")
    p.add_argument("--out", "-o", required=True, help="output folder")
