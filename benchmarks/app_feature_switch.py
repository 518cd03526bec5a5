"""How long the app takes to show another feature of a layer already computed.

Drives the app's own functions (``mirdeconv.app.logic``) the way the page does when the
feature picker changes on a warm 30-second track: the feature's auralisation (mask onto the
track's STFT, ISTFT, normalisation), its three-panel figure as PNG and its WAV bytes.  The
layer's deconvolution is computed once first (that is what "warm" means).

Run: python benchmarks/app_feature_switch.py [--model musicnn:mtt-vgg] [--layer 3CNN]
"""

from __future__ import annotations

import argparse
import statistics
import time

from mirdeconv.app import logic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=logic.DEFAULT_MODEL)
    ap.add_argument("--layer", default="3CNN")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    model = logic.open_model(args.model)
    y, sr = logic.demo_audio("demo: drums, bass and chords")
    t0 = time.perf_counter()
    result = logic.layer_result(model, y, sr, args.layer)
    cold = time.perf_counter() - t0
    times = {"sound": [], "figure": [], "total": []}
    for k in range(1, args.repeats + 1):
        t0 = time.perf_counter()
        audio, out_sr, _ = logic.feature_sound(result, k, y, sr)
        wav = logic.wav_bytes(audio, out_sr)
        t1 = time.perf_counter()
        png = logic.figure_png(logic.feature_figure(result, k, audio, out_sr))
        t2 = time.perf_counter()
        assert wav and png
        times["sound"].append(t1 - t0)
        times["figure"].append(t2 - t1)
        times["total"].append(t2 - t0)
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(f"{args.model} / {args.layer}, 30 s demo track at {sr} Hz; the layer's "
          f"{len(result.features)} features deconvolved once in {cold:.1f} s")
    print("| step | median ms |")
    print("|---|---:|")
    print(f"| auralisation + WAV | {med['sound']:.0f} |")
    print(f"| three-panel figure (PNG) | {med['figure']:.0f} |")
    print(f"| feature switch, total | {med['total']:.0f} |")
    print(f"feature switch on a warm 30 s track: {med['total']:.0f} ms")


if __name__ == "__main__":
    main()
