"""The paper's workload: every feature of every layer of Choi's vggnet5 for three songs.

vggnet5 (docs/method.md §1.2: STFT 257 bins at 11025 Hz; 5 blocks of 3x3 conv, 64 maps, ReLU, 2x2
max-pool; random weights, fixed seed), three deterministic 30-second tracks (drums, bass,
chords), 5 layers x 64 features x 3 tracks = 960 auralisations written to disk by the batch
job (``mirdeconv auralise``: WAV files, a grid PNG per layer, index.parquet).

In the same run it times, on a subset, a plain per-feature loop (one eager GradientTape per
feature with a custom-gradient ReLU, then the same ISTFT and file writing), extrapolated per
feature; and the batch job with ``--precision bfloat16``, whose masks are compared with
float32 (relative L2 per mask).

Run: python benchmarks/paper_workload.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mirdeconv import backend
from mirdeconv.auralisation import auralise_masks
from mirdeconv.batch import BatchSettings, run_batch
from mirdeconv.demo import demo_track, vggnet5
from mirdeconv.engine import deconvolve
from mirdeconv.loading import load_model, sidecar_path
from mirdeconv.options import DeconvOptions
from mirdeconv.representations import choi2016_stft
from mirdeconv.store import write_audio

LAYERS = ("pool1", "pool2", "pool3", "pool4", "pool5")
KINDS = ("drums", "bass", "chords")
SECONDS = 30.0
LOOP_FEATURES = (0, 37)  # per layer, for the per-feature loop (on the first track)


def per_feature_loop(model, rep, track: Path, out: Path) -> float:
    """Seconds per feature of the plain loop: eager tape per feature, then ISTFT and a file."""
    tf = backend.tensorflow()

    @tf.custom_gradient
    def deconv_relu(x):
        return tf.nn.relu(x), lambda dy: tf.nn.relu(dy)

    y, sr = sf.read(track, dtype="float32")
    track = rep.prepare(y, sr)
    x0 = tf.constant(track.frames.T[None, :, :, None])     # (1, bins, frames, 1)
    convs = [model.get_layer(f"conv{i + 1}").get_weights() for i in range(5)]
    times = []
    for depth, layer in enumerate(LAYERS, start=1):
        for k in LOOP_FEATURES:
            t0 = time.perf_counter()
            x = tf.Variable(x0)
            with tf.GradientTape() as tape:
                a = x
                for w, b in convs[:depth]:
                    a = tf.nn.max_pool2d(deconv_relu(tf.nn.conv2d(a, w, 1, "SAME") + b), 2, 2,
                                         "VALID")
                seed = tf.one_hot(k, a.shape[-1]) * a
                obj = tf.reduce_sum(a * tf.stop_gradient(seed))
            mask = tape.gradient(obj, x).numpy()[0, :, :, 0].T      # (frames, bins)
            audio, out_sr, _ = auralise_masks(mask[None], track, audio=y, sr=sr)
            write_audio(out / f"loop_{layer}_{k}.wav", audio[0], out_sr)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])  # the first one pays for eager start-up


def bf16_errors(model, rep, track: Path) -> list[float]:
    """Relative L2 error of every bfloat16 mask against float32, all layers, one track."""
    y, sr = sf.read(track, dtype="float32")
    track = rep.prepare(y, sr)
    errs = []
    for layer in LAYERS:
        a = deconvolve(model, track=track, layer=layer).masks
        b = deconvolve(model, track=track, layer=layer, precision="bfloat16").masks
        for m32, m16 in zip(a, b):
            n = np.linalg.norm(m32)
            if n > 0:
                errs.append(float(np.linalg.norm(m16 - m32) / n))
    return errs


def workload(root: Path) -> tuple[object, list[Path]]:
    """vggnet5 saved as ``root/vggnet5.keras`` (with its representation) and the three
    tracks as WAV files in ``root``; returns the Keras model and the track paths."""
    rep = choi2016_stft()
    net = vggnet5(seed=2016)
    net.save(root / "vggnet5.keras")
    sidecar_path(root / "vggnet5.keras").write_text(
        json.dumps({"representation": rep.to_dict(), "input_axes": "NFTC"}))
    tracks = []
    for i, kind in enumerate(KINDS):
        p = root / f"{kind}.wav"
        sf.write(p, demo_track(sr=rep.sr, seconds=SECONDS, kind=kind, seed=i), rep.sr)
        tracks.append(p)
    return net, tracks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="write the outputs here and keep them")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mirdeconv-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rep = choi2016_stft()
    net, tracks = workload(root)
    settings = BatchSettings(layers=LAYERS, features="all", analyse=False)
    n = len(LAYERS) * 64 * len(tracks)

    for d in ("fp32", "bf16", "loop"):
        shutil.rmtree(root / d, ignore_errors=True)
    t0 = time.perf_counter()
    s32 = run_batch(root / "vggnet5.keras", tracks, root / "fp32", settings, progress=False)
    t32 = time.perf_counter() - t0
    assert s32.n_files == n + len(LAYERS) * len(tracks), s32
    t0 = time.perf_counter()
    run_batch(root / "vggnet5.keras", tracks, root / "bf16",
              BatchSettings(layers=LAYERS, features="all",
                            deconv=DeconvOptions(precision="bfloat16"), analyse=False),
              progress=False)
    t16 = time.perf_counter() - t0

    model = load_model(root / "vggnet5.keras")
    (root / "loop").mkdir()
    loop = per_feature_loop(net, rep, tracks[0], root / "loop")
    errs = bf16_errors(model, rep, tracks[0])
    per = 1000 * t32 / n
    ratio = loop * 1000 / per
    print(f"vggnet5 (random weights), {len(tracks)} x {SECONDS:.0f} s tracks at {rep.sr} Hz, "
          f"{len(LAYERS)} layers x 64 features = {n} auralisations (WAV) + "
          f"{len(LAYERS) * len(tracks)} grid PNGs + index")
    print("| run | total s | ms per auralisation | vs per-feature loop |")
    print("|---|---:|---:|---:|")
    print(f"| batch job, float32 | {t32:.1f} | {per:.1f} | {ratio:.1f}x |")
    print(f"| batch job, bfloat16 | {t16:.1f} | {1000 * t16 / n:.1f} | "
          f"{loop * 1000 / (1000 * t16 / n):.1f}x |")
    print(f"| per-feature loop (eager tape + ISTFT), {2 * len(LAYERS)} features, "
          f"extrapolated | {loop * n:.0f} | {1000 * loop:.0f} | 1.0x |")
    print(f"bfloat16 masks vs float32 ({len(errs)} masks, relative L2): median "
          f"{statistics.median(errs):.2e}, max {max(errs):.2e}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"paper workload: {t32:.1f} s total, {per:.1f} ms per auralisation, "
          f"{ratio:.1f}x vs per-feature loop")


if __name__ == "__main__":
    main()
