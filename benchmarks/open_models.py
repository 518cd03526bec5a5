"""What opening a PyTorch model costs: Won et al.'s taggers through the ``won2020`` plugin.

Each model is opened in a fresh process (``python benchmarks/open_models.py --worker ID``):
the seconds of ``import mirdeconv`` plus ``load_model(ID)`` the first time (TensorFlow and
PyTorch imported, the module exported to ONNX, converted by onnx2tf, checked against ONNX
Runtime, canonicalised), then of a second ``load_model(ID)`` in the same process (export and
conversion again, the libraries loaded).  The checkpoints come from ``MIRDECONV_WON2020_DIR``
or ``../shared/models/won2020``.

The last line is for scripts: ``open models: slowest N.N s (ID), again in the same process
M.M s``.

Run: python benchmarks/open_models.py [--models won2020:mtat-fcn,...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("won2020:mtat-fcn", "won2020:mtat-crnn", "won2020:mtat-musicnn")


def worker(model_id: str) -> None:
    """Open ``model_id`` twice in this process; print both times."""
    t0 = time.perf_counter()
    import mirdeconv

    model = mirdeconv.load_model(model_id)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    mirdeconv.load_model(model_id)
    again = time.perf_counter() - t1
    print(f"{first:.2f} {again:.2f} {len(model.layers)} {len(model.graph.graph_def.node)}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", help="(internal) open one model")
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    folder = os.environ.get("MIRDECONV_WON2020_DIR") or str(HERE.parents[1] / "shared" / "models" / "won2020")
    if not (Path(folder) / "mtat_fcn.pth").is_file():
        sys.exit(f"the won2020 checkpoints are not in {folder} (set MIRDECONV_WON2020_DIR)")
    env = {**os.environ, "MIRDECONV_WON2020_DIR": folder, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print("| model | first open, fresh process (s) | again, same process (s) | layers | graph nodes |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for model_id in args.models.split(","):
        out = subprocess.run([sys.executable, __file__, "--worker", model_id], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        first, again, layers, nodes = float(out[-4]), float(out[-3]), out[-2], out[-1]
        rows.append((first, again, model_id))
        print(f"| {model_id} | {first:.1f} | {again:.1f} | {layers} | {nodes} |", flush=True)
    first, again, model_id = max(rows)
    print(f"open models: slowest {first:.1f} s ({model_id}), again in the same process {again:.1f} s")


if __name__ == "__main__":
    main()
