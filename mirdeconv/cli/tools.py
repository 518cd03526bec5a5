"""The commands about models and the app: zoo, plugins, models, demo, app."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import backend
from ..options import UPLOAD_LIMIT_MB
from .common import number


def cmd_zoo(args: argparse.Namespace) -> int:
    from ..zoo import ZOO, cache_dir, fetch

    if args.zoo_command == "list":
        for name, entry in ZOO.items():
            cached = (cache_dir() / "zoo" / f"{name}.pb").is_file()
            print(f"{name:<12} {entry.description}{'  [cached]' if cached else ''}")
        return 0
    path = fetch(args.name)
    print(f"{args.name}: {path} (+ {path.with_suffix('.json').name})")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from ..adapters import adapter_errors, list_adapters
    from ..registry import discover

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
    from ..registry import models
    from ..zoo import ZOO

    for model_id, (_, spec) in models().items():
        unmet = spec.unmet()
        print(f"{model_id:<36} {spec.description}" + (f" (not available: {unmet})" if unmet else ""))
    for name, entry in ZOO.items():
        print(f"{name:<36} {entry.description} (zoo)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import soundfile as sf

    from ..demo import demo_track, vggnet5
    from ..engine import deconvolve
    from ..export import save_result
    from ..loading import load_model, sidecar_path
    from ..representations import choi2016_stft
    from ..store import atomic_path, prepare_folder, save_json

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


def zoo_args(p: argparse.ArgumentParser) -> None:
    zsub = p.add_subparsers(dest="zoo_command", required=True)
    zsub.add_parser("list", help="the zoo's models", description="the zoo's models, and which "
                                                                  "are converted already")
    z = zsub.add_parser("fetch", help="download and convert a zoo model now",
                        description="download the musicnn wheel and convert a zoo model now")
    z.add_argument("name", help="e.g. mtt-musicnn")


def demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--layers", default="pool1,pool3,pool5",
                   help="layers of vggnet5 to deconvolve (default: pool1,pool3,pool5)")
    p.add_argument("--features", default="0-7", help="features per layer (default: 0-7)")
    p.add_argument("--seconds", type=number("demo_seconds"), default=8.0,
                   help="length of the demo track in seconds (default: 8)")


def app_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=number("port"), default=8501, help="the port (default: 8501)")
    p.add_argument("--address", help="the address to listen on (default: Streamlit's)")
