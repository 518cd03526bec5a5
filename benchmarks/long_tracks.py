"""Long tracks: peak RSS and seconds per audio-minute for 1, 3, 10 and 30-minute tracks.

Each run is a fresh process (``mirdeconv deconvolve musicnn:mtt-vgg TRACK --layer 3CNN
--features 0-3``, or with ``--auralise`` the batch ``mirdeconv auralise musicnn:mtt-vgg TRACK
--layers all --features 0-7`` with its analysis; the default memory budget) on the demo mix
tiled to the length; the
table gives peak RSS (``VmHWM``), wall time, seconds per audio-minute of the work (the wall
time less that of a 10-second track, which is all start-up: imports, opening the model), and
both as a ratio to the 3-minute track's, side by side in one run.

Run: python benchmarks/long_tracks.py [--minutes 1,3,10,30] [--layer 3CNN] [--auralise]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mirdeconv.demo import demo_track

#: The peak is /proc/self/status's VmHWM (this process's own, since exec; ru_maxrss would keep
#: the high-water mark inherited from the parent at fork).
CODE = ("import json, re, sys; from mirdeconv.cli import main; rc = main(sys.argv[1:]); "
        "kb = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "print(json.dumps({'rc': rc, 'peak': int(kb)}))")


def job(auralise: bool, layer: str) -> tuple[list[str], str]:
    """(the CLI's arguments after the track, the table's title) of one run."""
    if auralise:
        return (["--layers", "all", "--features", "0-7"],
                "mtt-vgg, auralise --layers all --features 0-7 (with the analysis)")
    return ["--layer", layer, "--features", "0-3"], f"mtt-vgg {layer}, features 0-3"


def run(track: Path, args: list[str], out: Path, command: str) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of one run of the CLI in a fresh process."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CODE, command, "musicnn:mtt-vgg", str(track),
                        *args, "--out", str(out)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return json.loads(r.stdout.strip().splitlines()[-1])["peak"] * 1024 / 1e9, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", default="1,3,10,30")
    ap.add_argument("--layer", default="3CNN")
    ap.add_argument("--auralise", action="store_true", help="the batch job, every layer")
    args = ap.parse_args()
    cli, title = job(args.auralise, args.layer)
    command = "auralise" if args.auralise else "deconvolve"
    minutes = [int(m) for m in args.minutes.split(",")]
    base = demo_track(sr=16000, seconds=60.0, kind="mix")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="mirdeconv-long-") as tmp:
        tmp = Path(tmp)
        run_short = tmp / "warm.flac"           # the zoo model converted, caches warm
        sf.write(run_short, base[:16000 * 10], 16000)
        run(run_short, cli, tmp / "warm", command)
        start = run(run_short, cli, tmp / "start", command)[1]     # start-up, caches warm
        for m in minutes:
            path = tmp / f"{m}min.flac"
            sf.write(path, np.tile(base, m), 16000)
            rows[m] = run(path, cli, tmp / f"out{m}", command)
    ref_m = 3 if 3 in rows else minutes[0]
    ref_peak, ref_wall = rows[ref_m]
    ref_per = (ref_wall - start) / (ref_m - 1 / 6)
    print(f"{title}, default memory budget; start-up {start:.1f} s "
          f"(a 10-s track); ratios to the {ref_m}-minute track")
    print("| track | peak RSS GB | vs ref | wall s | work s per audio-minute | vs ref |")
    print("|---|---:|---:|---:|---:|---:|")
    for m, (peak, wall) in rows.items():
        per = (wall - start) / (m - 1 / 6)
        print(f"| {m} min | {peak:.2f} | {peak / ref_peak:.2f}x | {wall:.1f} | {per:.2f} | "
              f"{per / ref_per:.2f}x |")


if __name__ == "__main__":
    main()
