"""Long tracks: peak RSS of ``deconvolve``, ``auralise``, ``explain`` and ``atlas`` on 3, 10, 20
and 30-minute tracks, each run a fresh process.

The track is the demo mix tiled to the length, written as FLAC at ``--sr`` (default 44.1 kHz,
the rate of most real tracks: the model's 16 kHz is then a second copy).  The commands, each
with the default memory budget:

* ``deconvolve musicnn:mtt-vgg TRACK --layer 3CNN --features 0-3``
* ``auralise musicnn:mtt-vgg TRACK --layers all --features 0-3`` (the batch job with its
  analysis; layer L+1 deconvolved while layer L is turned into sound)
* ``explain mtt-musicnn TRACK --tag drums`` (saliency; its sound and complement written)
* ``atlas musicnn:mtt-vgg FOLDER --layers 5CNN --top-k 1 --scheduler synchronous`` (one
  track; the top-k pass over the whole track, then each winner's excerpt deconvolved,
  auralised and described; in this process, so that its peak is this process's)

Each command gets one table: peak RSS (``VmHWM``), wall time, seconds per audio-minute of the
work (the wall time less that of a 10-second track, which is all start-up: imports, opening
the model), and both as a ratio to the 3-minute track's.

Run: python benchmarks/long_tracks.py [--commands deconvolve,auralise,explain,atlas]
[--minutes 3,10,20,30] [--sr 44100] [--layer 3CNN]
(a quick run: ``--commands explain --minutes 3,10``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from mirdeconv.demo import demo_track

#: The peak is /proc/self/status's VmHWM (this process's own, since exec; ru_maxrss would keep
#: the high-water mark inherited from the parent at fork).
CODE = ("import json, re, sys; from mirdeconv.cli import main; rc = main(sys.argv[1:]); "
        "kb = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "print(json.dumps({'rc': rc, 'peak': int(kb)}))")

#: Command -> (the CLI's arguments for a track and an output folder, the table's title).
Job = tuple[Callable[[Path, Path], list[str]], str]


def jobs(layer: str) -> dict[str, Job]:
    """Every command the benchmark runs."""
    def atlas(track: Path, out: Path) -> list[str]:
        source = out.with_name(out.name + "-source")       # a folder holding the one track
        source.mkdir(parents=True, exist_ok=True)
        if not (source / track.name).exists():
            os.link(track, source / track.name)
        return ["atlas", "musicnn:mtt-vgg", str(source), "--layers", "5CNN", "--top-k", "1",
                "--scheduler", "synchronous", "--out", str(out)]

    return {
        "deconvolve": (lambda t, o: ["deconvolve", "musicnn:mtt-vgg", str(t), "--layer", layer,
                                     "--features", "0-3", "--out", str(o)],
                       f"deconvolve mtt-vgg {layer}, features 0-3"),
        "auralise": (lambda t, o: ["auralise", "musicnn:mtt-vgg", str(t), "--layers", "all",
                                   "--features", "0-3", "--out", str(o)],
                     "auralise mtt-vgg --layers all --features 0-3 (with the analysis)"),
        "explain": (lambda t, o: ["explain", "mtt-musicnn", str(t), "--tag", "drums",
                                  "--out", str(o)],
                    "explain mtt-musicnn --tag drums (saliency)"),
        "atlas": (atlas, "atlas mtt-vgg --layers 5CNN --top-k 1 (synchronous, one track)"),
    }


def run(args: list[str]) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of one run of the CLI in a fresh process."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["peak"] * 1024 / 1e9, wall


def table(title: str, start: float, rows: dict[int, tuple[float, float]]) -> str:
    """One command's table (markdown)."""
    ref_m = 3 if 3 in rows else min(rows)
    ref_peak, ref_wall = rows[ref_m]
    ref_per = (ref_wall - start) / (ref_m - 1 / 6)
    lines = [f"{title}; start-up {start:.1f} s (a 10-s track); ratios to the {ref_m}-minute track",
             "| track | peak RSS GB | vs ref | wall s | work s per audio-minute | vs ref |",
             "|---|---:|---:|---:|---:|---:|"]
    for m, (peak, wall) in rows.items():
        per = (wall - start) / (m - 1 / 6)
        lines.append(f"| {m} min | {peak:.2f} | {peak / ref_peak:.2f}x | {wall:.1f} | {per:.2f} | "
                     f"{per / ref_per:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commands", default="deconvolve,auralise,explain,atlas",
                    help="comma-separated, of deconvolve, auralise, explain, atlas")
    ap.add_argument("--minutes", default="3,10,20,30", help="track lengths (comma-separated)")
    ap.add_argument("--sr", type=int, default=44100, help="the tracks' sample rate (Hz)")
    ap.add_argument("--layer", default="3CNN", help="deconvolve's layer")
    args = ap.parse_args()
    table_of = jobs(args.layer)
    commands = [c for c in args.commands.split(",") if c]
    unknown = set(commands) - set(table_of)
    if unknown:
        ap.error(f"unknown commands {sorted(unknown)}; choose from {', '.join(table_of)}")
    minutes = [int(m) for m in args.minutes.split(",")]
    base = demo_track(sr=args.sr, seconds=60.0, kind="mix")
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; the demo mix at {args.sr} Hz; "
          "default memory budget", flush=True)
    with tempfile.TemporaryDirectory(prefix="mirdeconv-long-") as tmp:
        tmp = Path(tmp)
        short = tmp / "warm.flac"
        sf.write(short, base[:args.sr * 10], args.sr)
        tracks = {}
        for m in minutes:
            tracks[m] = tmp / f"{m}min.flac"
            sf.write(tracks[m], np.tile(base, m), args.sr)
        for command in commands:
            cli, title = table_of[command]
            run(cli(short, tmp / f"{command}-warm"))           # the zoo model converted, caches warm
            start = run(cli(short, tmp / f"{command}-start"))[1]
            rows = {m: run(cli(tracks[m], tmp / f"{command}-{m}")) for m in minutes}
            print(table(title, start, rows) + "\n", flush=True)


if __name__ == "__main__":
    main()
