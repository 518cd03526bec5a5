"""Real models users open: seconds per feature for every layer, and the ratio to its FLOP floor.

Models: ``musicnn:mtt-vgg``, ``musicnn:mtt-musicnn``, ``choi2016:music_tagger_cnn`` (weights
from ``../shared/models/choi2016``), ``tempocnn:deeptemp_k4`` and Essentia's
``crepe-tiny-1.pb`` (``../shared/models/essentia``); one 30-s track (the first 30 s of
Muldjord's "Chaos God" from Debian's fretsonfire-songs-muldjord, or the demo mix when it is
not installed).

For every layer the deconvnet of its first ``k`` features (``k = min(16, n)``; the default
target ``map``, float32, the mode the engine picks) is timed twice: the first call compiles
the layer's program, the second gives the seconds per feature (its forward pass shared by
the k features).  The floor is the multiply-adds one feature's backward pass
must do: the transposed convolutions of every conv (and matmul) between the input and the
layer, counted from the shapes the graph gives for the input the engine feeds it (one track,
or its patches), the topmost conv counting one output channel (the seed is one map), a conv
whose output a non-overlapping max-pool takes counting only the pool's switches (one cell in
each window carries a gradient: musicnn's pools over all bands keep 1/59 and 1/30 of their
convs' outputs), at the conv throughput of this machine measured in the same run
(``engine_vs_reference``'s Conv2D).  The last line is for scripts: ``real models: worst
layer N.NNx its floor (MODEL LAYER)``.

Run: python benchmarks/real_models.py [--models mtt-vgg,crepe] [--features 8]
This is the yardstick of the performance work: ``ratio`` = seconds per feature / floor.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from engine_vs_reference import machine_conv_gflops  # a script beside this one

from mirdeconv import backend
from mirdeconv.audio import load
from mirdeconv.demo import demo_track
from mirdeconv.engine import deconvolve, model_input
from mirdeconv.loading import load_model

tf = backend.tensorflow()

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
TRACK = Path("/usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/song.ogg")
SECONDS = 30.0
MODELS = {
    "mtt-vgg": lambda: load_model("musicnn:mtt-vgg"),
    "mtt-musicnn": lambda: load_model("musicnn:mtt-musicnn"),
    "choi2016": lambda: load_model(
        "choi2016:music_tagger_cnn",
        weights=SHARED / "choi2016" / "music_tagger_cnn_weights_tensorflow.h5"),
    "deeptemp_k4": lambda: load_model("tempocnn:deeptemp_k4"),
    "crepe-tiny": lambda: load_model(SHARED / "essentia" / "crepe-tiny-1.pb"),
}
CONVS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def the_track() -> tuple[np.ndarray, int, str]:
    if TRACK.is_file():
        y, sr = load(TRACK)
        return y[:int(SECONDS * sr)], sr, f"{TRACK.parent.name}/{TRACK.name}, first 30 s"
    return demo_track(sr=22050, seconds=SECONDS, kind="mix"), 22050, "demo mix (30 s)"


def _macs(op) -> float:
    """Multiply-adds of one conv or matmul (its input gradient costs the same)."""
    out = [int(d) for d in op.outputs[0].shape]
    k = [int(d) for d in op.inputs[1].shape]
    if op.type == "MatMul":
        inner = k[1] if op.get_attr("transpose_b") else k[0]
        return float(np.prod(out)) * inner
    per_output = k[0] * k[1] * (k[2] if op.type == "Conv2D" else 1)
    return float(np.prod(out)) * per_output


#: Operations that pass a conv's output on value by value (the pool's switches are theirs).
ELEMENTWISE = ("Relu", "Elu", "LeakyRelu", "BiasAdd", "FusedBatchNorm", "FusedBatchNormV3",
               "Mul", "AddV2", "Add", "Sub", "Identity")


def pooled_share(op) -> float:
    """1 / cells of the non-overlapping max-pool that takes ``op``'s output through value-by-
    value operations only (its backward pass has a value at the switches only: one cell per
    window), else 1."""
    t = op.outputs[0]
    while len(t.consumers()) == 1:
        nxt = t.consumers()[0]
        if nxt.type == "MaxPool":
            k, s = list(nxt.get_attr("ksize")), list(nxt.get_attr("strides"))
            return 1.0 / float(np.prod(k)) if k == s else 1.0
        if nxt.type not in ELEMENTWISE:
            return 1.0
        t = nxt.outputs[0]
    return 1.0


def floor_flops(model, layer, x_shape: tuple[int, ...]) -> float:
    """FLOPs of one feature's backward pass through ``layer``'s graph for inputs of ``x_shape``."""
    gd = model.graph.subgraph_def([layer.tensor])

    def forward(inp):
        return tf.graph_util.import_graph_def(gd, input_map={model.input_tensor: inp},
                                              return_elements=[layer.tensor], name="f")[0]

    g = tf.compat.v1.wrap_function(forward, [tf.TensorSpec(x_shape, tf.float32)]).graph
    top, seen, stack = set(), set(), [g.get_tensor_by_name("f/" + layer.tensor).op]
    while stack:                       # the convs with no conv between them and the layer
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in CONVS:
            top.add(op.name)
            continue
        stack.extend(t.op for t in op.inputs)
    total = 0.0
    for op in g.get_operations():
        if op.type not in CONVS or not op.name.startswith("f/"):
            continue
        macs = _macs(op) * pooled_share(op)
        channels = int(op.outputs[0].shape[-1])
        if op.name in top and channels == layer.n_features:
            macs /= channels
        total += macs
    return 2.0 * total


def time_layer(model, track, layer, n: int) -> tuple[float, float, str]:
    """(s per feature once compiled, s of the first call, mode) for the first n features."""
    t = []
    for _ in range(2):                 # the first call compiles the layer's program
        t0 = time.perf_counter()
        res = deconvolve(model, track=track, layer=layer.name, features=list(range(n)))
        t.append(time.perf_counter() - t0)
    return t[1] / n, t[0], res.mode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--features", type=int, default=16, help="k: features timed per layer")
    args = ap.parse_args()
    y, sr, what = the_track()
    gflops = machine_conv_gflops()
    print(f"track: {what}; machine conv throughput (fp32 Conv2D): {gflops:.0f} GFLOP/s")
    summary, worst = [], []
    for name in args.models.split(","):
        model = MODELS[name]()
        track = model.representation.prepare(y, sr)
        print(f"\n## {name}: {model.representation.describe()}")
        print("| layer | features | mode | s per feature | first call s | floor ms per feature | ratio |")
        print("|---|---:|---|---:|---:|---:|---:|")
        spent = floor_total = 0.0
        ratios = []
        for layer in model.layers:
            per, first, mode = time_layer(model, track, layer, min(args.features, layer.n_features))
            x, _ = model_input(model, track.frames, whole=mode == "whole",
                               stride=layer.stride[0] or 1)
            floor = floor_flops(model, layer, x.shape) / (gflops * 1e9)
            ratio = per / floor if floor > 0 else float("nan")
            ratios.append((layer.name, ratio))
            spent += per * layer.n_features
            floor_total += floor * layer.n_features
            print(f"| {layer.name} | {layer.n_features} | {mode} | {per:.4f} | {first:.2f} | "
                  f"{1000 * floor:.3f} | {ratio:.1f}x |")
        summary.append((name, len(model.layers), spent, floor_total))
        worst.extend((ratio, name, layer) for layer, ratio in ratios)
    print("\n| model | layers | s for every feature of every layer | floor s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, n, spent, floor in summary:
        print(f"| {name} | {n} | {spent:.1f} | {floor:.2f} | {spent / floor:.1f}x |")
    ratio, name, layer = max(w for w in worst if np.isfinite(w[0]))
    print(f"\nreal models: worst layer {ratio:.2f}x its floor ({name} {layer})")


if __name__ == "__main__":
    main()
