"""Class explanations: seconds per explanation for every method, and how faithful each is.

Models: ``musicnn:mtt-musicnn`` and ``choi2016:music_tagger_cnn`` (weights from
``../shared/models/choi2016``); one 30-s track (the first 30 s of Muldjord's "Chaos God"
from Debian's fretsonfire-songs-muldjord, or the demo mix when it is not installed); the
tag each model gives the highest probability on it.  For every method of
``mirdeconv.explanations.ATTRIBUTIONS`` (integrated gradients with 32 steps, SmoothGrad with 16
copies, Grad-CAM at the model's last feature layer), a first call compiles, then one call
is timed, side by side in this run; its time is also given as a multiple of the saliency's
(one gradient).  Then the faithfulness figures of every method on the same track
(``mirdeconv.explanations.faithfulness``, 10 steps): L-MAC's AI, AD, AG, FF, Fid-In and the
deletion and insertion areas beside a random order's; and L-MAC's figures again through
re-synthesised audio (``mirdeconv.explanations.audio_faithfulness``: the explanation's sound
and its complement's fed back).

The last line is for scripts: ``explain: faithful on deletion N of M (model, method)
explanations`` (deletion area at least 10 % below the random order's).

Run: python benchmarks/explain_methods.py [--models mtt-musicnn,choi2016]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from real_models import MODELS, the_track  # a script beside this one

from mirdeconv.explanations import ATTRIBUTIONS, audio_faithfulness, explain, faithfulness

SETTINGS = {"steps": 32, "copies": 16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mtt-musicnn,choi2016")
    ap.add_argument("--steps", type=int, default=10, help="deletion / insertion steps")
    args = ap.parse_args()
    y, sr, what = the_track()
    print(f"track: {what}")
    timings, figures, heard = [], [], []
    for name in args.models.split(","):
        model = MODELS[name]()
        track = model.representation.prepare(y, sr)
        top = explain(model, track=track, method="saliency")
        tag, layer = top.indices[0], model.layers[-1].name
        print(f"\n## {name}: top tag {top.tags[0]!r} (p {top.probabilities[0]:.2f}), "
              f"{top.n_patches} patches; Grad-CAM at {layer}")
        for method in ATTRIBUTIONS:          # the layer: only a method that takes one reads it
            explain(model, track=track, tag=tag, method=method, layer=layer, **SETTINGS)  # compiles
            t0 = time.perf_counter()
            e = explain(model, track=track, tag=tag, method=method, layer=layer, **SETTINGS)
            timings.append((name, method, time.perf_counter() - t0))
            f = faithfulness(model, e, steps=args.steps)
            figures.append((name, method, f.table()[0],
                            None if e.completeness is None else float(e.completeness[0])))
            heard.append((name, method, audio_faithfulness(model, e)[0]))
    print("\n| model | method | s per explanation | x saliency |")
    print("|---|---|---:|---:|")
    base = {m: s for m, meth, s in timings if meth == "saliency"}
    for m, meth, s in timings:
        print(f"| {m} | {meth} | {s:.2f} | {s / base[m]:.1f} |")
    print("\n| model | method | p | p in | AI | AD | AG | FF | Fid-In | deletion (random) "
          "| insertion (random) | IG completeness error |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|")
    faithful = 0
    for m, meth, r, comp in figures:
        faithful += r["deletion"] < 0.9 * r["deletion_random"]
        print(f"| {m} | {meth} | {r['p']:.3f} | {r['p_in']:.3f} | {r['AI']:.0f} | {r['AD']:.1f} | "
              f"{r['AG']:.1f} | {r['FF']:+.3f} | {'yes' if r['Fid-In'] else 'no'} | "
              f"{r['deletion']:.3f} ({r['deletion_random']:.3f}) | {r['insertion']:.3f} "
              f"({r['insertion_random']:.3f}) | {'' if comp is None else f'{100 * comp:.1f} %'} |")
    print("\nThrough re-synthesised audio (the explanation's sound in, its complement's out):")
    print("\n| model | method | p | p in | p out | AI | AD | AG | FF | Fid-In |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for m, meth, r in heard:
        print(f"| {m} | {meth} | {r['p']:.3f} | {r['p_in']:.3f} | {r['p_out']:.3f} | "
              f"{r['AI']:.0f} | {r['AD']:.1f} | {r['AG']:.1f} | {r['FF']:+.3f} | "
              f"{'yes' if r['Fid-In'] else 'no'} |")
    print(f"\nexplain: faithful on deletion {faithful} of {len(figures)} (model, method) "
          f"explanations")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
