"""What the feature analysis costs next to the deconvolution, measured side by side.

vggnet5 (docs/method.md §1.2, random weights, fixed seed), three deterministic 30-second tracks
(drums, bass, chords) at 11025 Hz: the paper's workload.

1. One track, every feature of the 5 layers: milliseconds per feature of the deconvolution
   (:func:`mirdeconv.deconvolve`) and of the descriptors (:func:`mirdeconv.analysis.describe`,
   plus the track's one-off :class:`~mirdeconv.analysis.TrackContext`).
2. The paper workload as the batch job (960 auralisations written to disk, grids, index),
   without and with the descriptor columns: the time the analysis adds.

Target: the analysis adds at most 50 % to the paper workload.

Run: python benchmarks/analysis_cost.py
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import soundfile as sf
from paper_workload import LAYERS, SECONDS, workload

from mirdeconv.analysis import Reference, TrackContext, describe
from mirdeconv.batch import BatchSettings, run_batch
from mirdeconv.engine import deconvolve
from mirdeconv.loading import load_model
from mirdeconv.representations import choi2016_stft


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="mirdeconv-analysis-"))
    rep = choi2016_stft()
    _, tracks = workload(root)          # the paper workload's net and tracks
    model = load_model(root / "vggnet5.keras")

    # 1. per feature, one track
    y, sr = sf.read(tracks[0], dtype="float32")
    track = rep.prepare(y, sr)
    deconvolve(model, track=track, layer="pool1", features=[0])          # warm up
    t0 = time.perf_counter()
    ctx = TrackContext(track, Reference.detect(y, sr))
    t_ctx = time.perf_counter() - t0
    t_dec = t_desc = 0.0
    n = 0
    print(f"vggnet5, one {SECONDS:.0f} s track at {rep.sr} Hz, all 64 features per layer")
    print("| layer | deconvolution ms/feature | descriptors ms/feature | ratio |")
    print("|---|---:|---:|---:|")
    for layer in LAYERS:
        t0 = time.perf_counter()
        res = deconvolve(model, track=track, layer=layer)
        t1 = time.perf_counter()
        describe(res, ctx)
        t2 = time.perf_counter()
        k = len(res.features)
        print(f"| {layer} | {1000 * (t1 - t0) / k:.1f} | {1000 * (t2 - t1) / k:.1f} | "
              f"{(t2 - t1) / (t1 - t0):.2f} |")
        t_dec, t_desc, n = t_dec + t1 - t0, t_desc + t2 - t1, n + k
    print(f"| all | {1000 * t_dec / n:.1f} | {1000 * t_desc / n:.1f} | {t_desc / t_dec:.2f} |")
    print(f"track context (HPSS, separation references, once per track): {1000 * t_ctx:.0f} ms")

    # 2. the paper workload as the batch job, without and with the analysis
    times = {}
    for flag in (False, True):
        out = root / f"batch-{flag}"
        t0 = time.perf_counter()
        run_batch(root / "vggnet5.keras", tracks, out,
                  BatchSettings(layers=LAYERS, features="all", analyse=flag), progress=False)
        times[flag] = time.perf_counter() - t0
    total = len(tracks) * len(LAYERS) * 64
    added = times[True] / times[False] - 1
    print(f"paper workload ({total} auralisations): without analysis {times[False]:.1f} s, "
          f"with {times[True]:.1f} s ({1000 * (times[True] - times[False]) / total:.1f} ms "
          f"per feature added)")
    print(f"analysis adds {100 * added:.0f} % to the paper workload (target: at most 50 %)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
