"""The ``mirdeconv`` command.

Its option flags (``--method``, ``--target``, ``--reading`` ...) and their help are generated
from :mod:`mirdeconv.options`, the one place where choices and defaults live.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from . import backend
from .errors import MirdeconvError
from .model import INPUT_AXES
from .options import SIGNS, UPLOAD_LIMIT_MB, DeconvOptions, SoundOptions, choices, parse_size
from .prediction import TOP
from .probes import PROBE_SR
from .representations import presets

__all__ = ["main", "build_parser", "add_option_flags", "options_from_args"]


# -- flags generated from the options -----------------------------------------------------
def _size(text: str) -> int:
    try:
        return parse_size(text)
    except MirdeconvError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_option_flags(p: argparse.ArgumentParser, cls: type, only: tuple[str, ...] | None = None
                     ) -> None:
    """Add a flag per field of an options class (``--method``, ``--output-sr`` ...), with its
    choices, default and help from :mod:`mirdeconv.options`."""
    for c in choices(cls, only):
        names = ["--" + c.name.replace("_", "-")] + ([c.short] if c.short else [])
        if c.table is not None:
            p.add_argument(*names, dest=c.name, choices=list(c.table), default=c.default,
                           help=f"{c.help} (default: {c.default})".replace("%", "%%"))
        else:
            p.add_argument(*names, dest=c.name, type=_size, default=c.default,
                           help=c.help.replace("%", "%%"))


def options_from_args(cls: type, args: argparse.Namespace) -> Any:
    """The options object from the parsed flags (fields without a flag keep their default);
    the memory budget is checked here, before any work."""
    opts = cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                  if hasattr(args, f.name)})
    if isinstance(opts, DeconvOptions):
        _ = opts.budget          # a bad MIRDECONV_MEMORY is refused now
    return opts


def _n(count: int, word: str) -> str:
    """``1 track``, ``2 tracks``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file (.keras, .h5, .pb), zoo name (mtt-musicnn, ...) or "
                                 "plugin id (musicnn:mtt-vgg, see `mirdeconv models`)")
    p.add_argument("--representation", "-r",
                   help=f"input representation: a preset ({', '.join(presets())}) or a JSON "
                        "file; default: NAME.mirdeconv.json beside the model")
    p.add_argument("--input-axes", choices=INPUT_AXES, help="model input layout")
    p.add_argument("--input", help="input tensor of a frozen graph (.pb)")
    p.add_argument("--output", help="the prediction tensor of a frozen graph (.pb)")
    p.add_argument("--algorithm", help="Essentia's input algorithm of a frozen graph "
                                       "(TensorflowPredictMusiCNN, TempoCNN, ...)")
    p.add_argument("--input-length", type=int,
                   help="frames per input patch, when the model's input leaves it free")
    p.add_argument("--adapter", help="open the model with this adapter (keras, essentia, pb, ...)")
    p.add_argument("--allow-unsafe", action="store_true",
                   help="let Lambda layers in a Keras file run (only for files you trust)")


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    """load_model options from the command line's model arguments."""
    opts: dict[str, Any] = {"representation": args.representation}
    for key in ("input_axes", "input", "output", "algorithm", "input_length", "adapter"):
        if getattr(args, key):
            opts[key] = getattr(args, key)
    if args.allow_unsafe:
        opts["allow_unsafe"] = True
    return opts


def _open_model(args: argparse.Namespace) -> Any:
    from .loading import load_model

    return load_model(args.model, **_model_options(args))


# -- commands ---------------------------------------------------------------------------------
def cmd_layers(args: argparse.Namespace) -> int:
    model = _open_model(args)
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
    from . import audio as audio_mod
    from .engine import deconvolve, memory_plan
    from .export import save_result
    from .options import feature_ranges, parse_features
    from .store import prepare_folder

    opts = options_from_args(DeconvOptions, args)
    feature_ranges(args.features)                 # all of this before the model loads
    prepare_folder(args.out)
    y, sr = audio_mod.load(args.audio, allow_truncated=args.allow_truncated)
    model = _open_model(args)
    info = model.layer(args.layer)
    feats = parse_features(args.features, info.n_features)
    track = model.representation.prepare(y, sr)
    print(memory_plan(model, track, layer=info.name, features=feats, options=opts).describe(),
          file=sys.stderr)             # refuses (exit 2) when one piece cannot fit
    res = deconvolve(model, track=track, layer=info.name, features=feats, options=opts,
                     progress=True)
    out = prepare_folder(Path(args.out) / Path(args.audio).stem / info.name)
    files = save_result(res, out, png=not args.no_png, identity=model.identity(), progress=True)
    n_dead = int(res.dead.sum())
    print(f"{len(res.features)} features of {info.name} ({opts.method}, {opts.target}, "
          f"{res.mode}): {len(files)} files in {out}" + (f"; {n_dead} dead" if n_dead else ""))
    return 0


def cmd_auralise(args: argparse.Namespace) -> int:
    from .batch import BatchSettings, run_batch

    layers = "all" if args.layers == "all" else tuple(x for x in args.layers.split(",") if x)
    settings = BatchSettings(layers=layers, features=args.features,
                             deconv=options_from_args(DeconvOptions, args),
                             sound=options_from_args(SoundOptions, args),
                             analyse=not args.no_analysis, allow_truncated=args.allow_truncated)
    summary = run_batch(args.model, args.tracks, args.out, settings, jobs=args.jobs,
                        progress=True, model_options=_model_options(args))
    print(f"{_n(summary.n_tracks, 'track')}: {_n(summary.n_layers_done, 'layer')} auralised, "
          f"{summary.n_layers_skipped} already complete, {_n(summary.n_files, 'file')} written "
          f"in {summary.seconds:.1f} s -> {summary.out / 'index.parquet'}")
    for f in summary.failures:
        print(f"  failed: {f['track']}{' / ' + f['layer'] if f['layer'] else ''}: {f['error']}",
              file=sys.stderr)
    if summary.exit_code:
        print("mirdeconv: " + ("nothing could be done" if summary.exit_code == 2 else
                               f"{_n(len(summary.failures), 'failure')}") + " (exit code "
              f"{summary.exit_code}; see {summary.out / 'summary.json'})", file=sys.stderr)
    return summary.exit_code


def cmd_index(args: argparse.Namespace) -> int:
    from .runstore import check_index, repair_index

    out = Path(args.folder)
    if not (out / "index.parquet").is_file() and not any(out.glob("*/*/_done.json")):
        print(f"mirdeconv: error: {out} is not a batch output folder (no index.parquet, no "
              "completed layers)", file=sys.stderr)
        return 2
    if args.repair:
        print(f"{out / 'index.parquet'}: rebuilt from the files, {_n(repair_index(out), 'row')}")
    problems = check_index(out)
    for kind, items in problems.items():
        for item in items[:20]:
            print(f"  {kind}: {item}")
        if len(items) > 20:
            print(f"  ... {len(items) - 20} more {kind}")
    bad = sum(map(len, problems.values()))
    print(f"{out / 'index.parquet'}: " + ("every file listed, every listed file on disk" if not bad
                                         else f"{_n(bad, 'problem')} (--repair rebuilds it)"))
    return 1 if bad else 0


def cmd_probes(args: argparse.Namespace) -> int:
    from .probes import FAMILIES, probe_set, write_probes

    families = FAMILIES if args.families == "all" else tuple(x for x in args.families.split(",") if x)
    clips = probe_set(sr=args.sr, families=families, renderer=args.renderer)
    files = write_probes(clips, args.out, annotations=args.annotations, progress=True)
    print(f"{len(clips)} probe clips ({', '.join(families)}) at {args.sr} Hz: {len(files)} files "
          f"in {args.out} (list: probes.csv)")
    return 0


def cmd_analyse(args: argparse.Namespace) -> int:
    from .analysis import analyse
    from .options import feature_ranges
    from .report import write_report

    opts, sound = options_from_args(DeconvOptions, args), options_from_args(SoundOptions, args)
    feature_ranges(args.features)                 # before the model loads
    model = _open_model(args)
    layers = "all" if args.layers == "all" else [x for x in args.layers.split(",") if x]
    features = None if args.features == "all" else args.features
    result = analyse(model, args.tracks or None, layers=layers, features=features, options=opts,
                     sound=sound, probe_sr=args.probe_sr, progress=True)
    files = write_report(result, model, args.out, progress=True)
    feats = result.per_feature
    print(f"{_n(len(feats), 'feature')} of {_n(len(result.settings['layers']), 'layer')} on "
          f"{_n(len(result.tracks), 'track')} -> {files['features']}, {files['report']}")
    for layer, counts in feats.groupby("layer", sort=False)["primary"]:
        top = counts.value_counts().head(4)
        print(f"  {layer:<24} " + ", ".join(f"{k} {v}" for k, v in top.items()))
    detected = sum(t["onsets_from"] == "librosa" for t in result.tracks)
    if detected:
        print(f"  reference onsets of {detected} track(s) were detected by librosa (no annotations)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from . import audio as audio_mod
    from .prediction import predict, summary

    y, sr = audio_mod.load(args.audio, allow_truncated=args.allow_truncated)
    model = _open_model(args)
    act, labels, how = predict(model, y, sr)
    print(f"{model.name} on {args.audio} ({len(act)} patches, through {how}):")
    for name, value in summary(act, labels, model.task, args.top):
        print(f"  {name:<24} {value}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from . import audio as audio_mod
    from .explanations import explain
    from .explanations.files import save_explanation
    from .explanations.sound import check_top_percent
    from .store import prepare_folder

    sound = options_from_args(SoundOptions, args)
    if args.top_percent is not None:
        check_top_percent(args.top_percent)       # before any work
    prepare_folder(args.out)
    y, sr = audio_mod.load(args.audio, allow_truncated=args.allow_truncated)
    model = _open_model(args)
    tags = [int(t) if t.isdigit() else t for t in args.tag] if args.tag else None
    expl = explain(model, y, sr, tag=tags, method=args.method, output=args.target,
                   steps=args.steps, samples=args.samples, noise=args.noise, seed=args.seed,
                   layer=args.layer, progress=True)
    figures = None
    if args.faithfulness:
        from .explanations import faithfulness

        figures = faithfulness(model, expl, top_percent=args.top_percent).table()
    out = Path(args.out) / Path(args.audio).stem / args.method
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
    print(f"{expl.method} over {_n(expl.n_patches, 'patch')}".replace("patchs", "patches")
          + f": {_n(len(files), 'file')} in {out}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from .zoo import ZOO, cache_dir, fetch

    if args.zoo_command == "list":
        for name, entry in ZOO.items():
            cached = (cache_dir() / "zoo" / f"{name}.pb").is_file()
            print(f"{name:<12} {entry.description}{'  [cached]' if cached else ''}")
        return 0
    path = fetch(args.name)
    print(f"{args.name}: {path} (+ {path.with_suffix('.json').name})")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .adapters import adapter_errors, list_adapters
    from .registry import discover

    infos = discover()
    if not infos:
        print("no plugins found")
    for info in infos:
        print(f"{info.name}: {info.status}  ({info.source})")
        if info.status != "ok":
            print(f"    error: {info.error}")
        for spec in info.models:
            print(f"    {info.name}:{spec.name:<28} {spec.description}")
    print("adapters: " + ", ".join(list_adapters()))
    for name, error in adapter_errors().items():
        print(f"  adapter {name}: error: {error}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import models
    from .zoo import ZOO

    for model_id, (_, spec) in models().items():
        print(f"{model_id:<36} {spec.description}")
    for name, entry in ZOO.items():
        print(f"{name:<36} {entry.description} (zoo)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import soundfile as sf

    from .demo import demo_track, vggnet5
    from .engine import deconvolve
    from .export import save_result
    from .loading import load_model, sidecar_path
    from .representations import choi2016_stft
    from .store import atomic_path, prepare_folder, save_json

    out = prepare_folder(args.out)
    rep = choi2016_stft()
    model_path = out / "vggnet5.keras"
    if not model_path.exists():
        net = vggnet5()
        with atomic_path(model_path) as tmp:
            net.save(tmp.with_suffix(".keras"))
            tmp.with_suffix(".keras").replace(tmp)
        save_json(sidecar_path(model_path), {"representation": rep.to_dict(),
                                             "input_axes": "NFTC"})
    track = out / "demo.wav"
    y = demo_track(sr=rep.sr, seconds=args.seconds)
    with atomic_path(track) as tmp:
        sf.write(tmp, y, rep.sr, format="WAV")
    model = load_model(model_path)
    print(f"demo model {model_path} (random weights) and track {track} ({args.seconds:.0f} s)")
    for layer in args.layers.split(","):
        res = deconvolve(model, y, rep.sr, layer=layer, features=args.features, progress=True)
        folder = save_result(res, out / "deconvolution" / layer, identity=model.identity())[0].parent
        print(f"  {layer}: {len(res.features)} features -> {folder}")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    """Serve the Streamlit app (the same page as ``streamlit run streamlit_app.py``): this
    process becomes the server (``exec``), so stopping it stops the server."""
    import importlib.util

    spec = importlib.util.find_spec("mirdeconv.app")
    page = Path(next(iter(spec.submodule_search_locations))) / "main.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(page), "--server.headless", "true",
           "--server.maxUploadSize", str(UPLOAD_LIMIT_MB), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none",
           "--server.port", str(args.port)]
    if args.address:
        cmd += ["--server.address", args.address]
    sys.stdout.flush()
    sys.stderr.flush()
    if backend.verbose():
        os.execve(sys.executable, cmd, {**os.environ, "MIRDECONV_VERBOSE": "1"})
    os.execv(sys.executable, cmd + ["--logger.level", "warning"])
    return 0                        # not reached


# -- the parser -------------------------------------------------------------------------------
def _selection_args(p: argparse.ArgumentParser, many_layers: bool) -> None:
    if many_layers:
        p.add_argument("--layers", default="all",
                       help="'all' or comma-separated layer names (default: all)")
    else:
        p.add_argument("--layer", "-l", required=True, help="layer name (see `mirdeconv layers`)")
    p.add_argument("--features", "-f", default="all",
                   help="e.g. 0-63, 3,5,10-12 or all (default: all)")


def _truncation_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-truncated", action="store_true",
                   help="use what decodes of a file that is cut short (refused by default)")


def _deconvolve_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("audio", help="audio file (wav, flac, ogg, mp3, ...)")
    _truncation_arg(p)
    _selection_args(p, many_layers=False)
    add_option_flags(p, DeconvOptions)
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--no-png", action="store_true", help="write only the .npy masks")


def _auralise_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("tracks", nargs="+", help="audio files")
    _truncation_arg(p)
    _selection_args(p, many_layers=True)
    add_option_flags(p, DeconvOptions)
    add_option_flags(p, SoundOptions)
    p.add_argument("--no-analysis", action="store_true",
                   help="leave the descriptor and label columns of the index empty")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes")
    p.add_argument("--out", "-o", required=True, help="output folder")


def _index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a batch output folder (mirdeconv auralise --out)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="compare the index with the files (default)")
    g.add_argument("--repair", action="store_true", help="rebuild the index from the files")


def _probes_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--sr", type=int, default=PROBE_SR, help=f"sample rate (default {PROBE_SR})")
    p.add_argument("--families", default="all", help="'all' or some of chords,drums,notes,onsets")
    p.add_argument("--renderer", default="synth", choices=["synth", "soundfont"],
                   help="synthesised instruments, or the General MIDI soundfont via fluidsynth")
    p.add_argument("--annotations", default="jams", choices=["jams", "json"])


def _analyse_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("tracks", nargs="*",
                   help="audio files (annotations from NAME.jams beside them; default: the probe set)")
    _selection_args(p, many_layers=True)
    add_option_flags(p, DeconvOptions)
    add_option_flags(p, SoundOptions, only=("reading", "sign"))
    p.add_argument("--probe-sr", type=int, default=PROBE_SR,
                   help=f"sample rate of the probe set (default {PROBE_SR})")
    p.add_argument("--out", "-o", required=True, help="output folder")


def _predict_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("audio", help="audio file")
    _truncation_arg(p)
    p.add_argument("--top", type=int, default=TOP, help=f"how many tags (default {TOP})")


def _explain_args(p: argparse.ArgumentParser) -> None:
    from .explanations import ATTRIBUTIONS, OUTPUTS, Settings

    _model_args(p)
    p.add_argument("audio", help="audio file")
    _truncation_arg(p)
    p.add_argument("--tag", action="append",
                   help="a tag (label or class index) to explain; repeat for more (default: the "
                        "model's top tag)")
    p.add_argument("--method", "-m", default="saliency", choices=list(ATTRIBUTIONS),
                   help="attribution method (default: saliency)")
    p.add_argument("--target", default="logit", choices=list(OUTPUTS),
                   help="explain the tag's logit or its probability (default: logit)")
    p.add_argument("--layer", "-l", help="Grad-CAM's layer (see `mirdeconv layers`)")
    p.add_argument("--steps", type=int, default=Settings.steps,
                   help=f"integrated gradients' steps (default {Settings.steps})")
    p.add_argument("--samples", type=int, default=Settings.samples,
                   help=f"SmoothGrad's noisy copies (default {Settings.samples})")
    p.add_argument("--noise", type=float, default=Settings.noise,
                   help=f"SmoothGrad's noise, a fraction of each patch's range (default {Settings.noise})")
    p.add_argument("--seed", type=int, default=Settings.seed, help="SmoothGrad's random seed")
    p.add_argument("--top-percent", type=float,
                   help="keep only the strongest PERCENT of the explanation (a binary mask)")
    p.add_argument("--sign", choices=list(SIGNS), default="positive",
                   help="which part of the explanation is heard (default: positive)")
    add_option_flags(p, SoundOptions, only=("output_sr", "normalize"))
    p.add_argument("--faithfulness", action="store_true",
                   help="feed the masked-in and masked-out track back; deletion and insertion "
                        "against a random order (printed, and kept in explanation.json)")
    p.add_argument("--no-png", action="store_true", help="no pictures")
    p.add_argument("--out", "-o", required=True, help="output folder")


def _zoo_args(p: argparse.ArgumentParser) -> None:
    zsub = p.add_subparsers(dest="zoo_command", required=True)
    zsub.add_parser("list", help="the zoo's models", description="the zoo's models, and which "
                                                                  "are converted already")
    z = zsub.add_parser("fetch", help="download and convert a zoo model now",
                        description="download the musicnn wheel and convert a zoo model now")
    z.add_argument("name", help="e.g. mtt-musicnn")


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--layers", default="pool1,pool3,pool5",
                   help="layers of vggnet5 to deconvolve (default: pool1,pool3,pool5)")
    p.add_argument("--features", default="0-7", help="features per layer (default: 0-7)")
    p.add_argument("--seconds", type=float, default=8.0,
                   help="length of the demo track in seconds (default: 8)")


def _app_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8501, help="the port (default: 8501)")
    p.add_argument("--address", help="the address to listen on (default: Streamlit's)")


def _no_args(p: argparse.ArgumentParser) -> None:
    pass


#: The commands: name -> (function, help, arguments).
COMMANDS: dict[str, tuple[Any, str, Any]] = {
    "layers": (cmd_layers, "list a model's feature layers", _model_args),
    "deconvolve": (cmd_deconvolve, "deconvolve features of a layer for a track", _deconvolve_args),
    "auralise": (cmd_auralise, "auralise every feature of layers for many tracks (the batch "
                               "job: audio, grids, index.parquet)", _auralise_args),
    "index": (cmd_index, "check (or --repair) a batch folder's index against its files",
              _index_args),
    "probes": (cmd_probes, "write the probe stimuli (chords, drums, notes, onsets) with their "
                           "annotations", _probes_args),
    "analyse": (cmd_analyse, "describe and label every feature (probe set or tracks): "
                             "features.parquet and an HTML report", _analyse_args),
    "predict": (cmd_predict, "a model's top tags (or tempo, or pitch) for a track",
                _predict_args),
    "explain": (cmd_explain, "which parts of a track made the model say a tag: the "
                             "explanation's mask, picture, sound and complement", _explain_args),
    "zoo": (cmd_zoo, "pretrained models (musicnn/vgg, MTT/MSD)", _zoo_args),
    "plugins": (cmd_plugins, "every model plugin and adapter found, with its status", _no_args),
    "models": (cmd_models, "every model id that load_model and the CLI accept", _no_args),
    "demo": (cmd_demo, "deconvolve a demo track through Choi's vggnet5", _demo_args),
    "app": (cmd_app, "serve the Streamlit app", _app_args),
}


def build_parser() -> argparse.ArgumentParser:
    verbose_help = ("let TensorFlow's and the dependencies' log lines through "
                    "(also MIRDECONV_VERBOSE=1)")
    common = argparse.ArgumentParser(add_help=False)   # --verbose after the command, too
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                        help=verbose_help)
    parser = argparse.ArgumentParser(
        prog="mirdeconv",
        description="See and hear what the feature maps of music CNNs respond to "
                    "(Zeiler-Fergus deconvolution, Choi et al. 2016).")
    parser.add_argument("--verbose", "-v", action="store_true", default=None, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, text, add_args) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text, parents=[common])
        p.set_defaults(func=func)
        add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mirdeconv`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        backend.quiet_mode(args.verbose)
        return int(args.func(args) or 0)
    except MirdeconvError as exc:
        print(f"mirdeconv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mirdeconv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
