"""Real models users open: seconds per feature for every layer, and the ratio to its FLOP floor.

Models: ``musicnn:mtt-vgg``, ``musicnn:mtt-musicnn``, ``choi2016:music_tagger_cnn`` (weights
from ``../shared/models/choi2016``), ``tempocnn:deeptemp_k4`` and Essentia's
``crepe-tiny-1.pb`` (``../shared/models/essentia``); one 30-s track (the first 30 s of
Muldjord's "Chaos God" from Debian's fretsonfire-songs-muldjord, or the demo mix when it is
not installed).

Every layer is deconvolved as a user's ``--features all`` does (the deconvnet, the default
target ``map``, float32, the mode the engine picks): a first call with one feature compiles
the layer's program (its seconds are printed), a second with two lets it take any number of
features, then ONE call deconvolves every feature of the layer and is timed. Its seconds per
feature are divided by the floor per feature: the work one forward pass (shared by the
layer's features) and one feature's backward pass must do, counted from the shapes the graph
gives for the input the engine feeds it (one track, or its patches), at the conv throughput
of this machine measured in the same run (``engine_vs_reference``'s Conv2D):

* forward: every conv (and matmul) between the input and the layer, whole;
* backward: their transposed convolutions, the topmost counting one output channel (the
  seed is one map), a conv whose output a non-overlapping max-pool takes (through value-by-
  value operations) counting only the pool's switches (one cell in each window carries a
  gradient: musicnn's pools over all bands keep 1/59, 1/30 and 1/96 of their convs'
  outputs; a 2 x 2 pool 1/4).  That is the least arithmetic any implementation must do; the
  ``dense floor`` column counts the transposed convolutions whole (the arithmetic of a dense
  implementation), so a ratio to it below 1 means the engine skips work a dense pass does.

The last line is for scripts: ``real models: worst layer N.NNx its floor (MODEL LAYER)``.

Run: python benchmarks/real_models.py [--models mtt-vgg,crepe-tiny] [--features K]
(``--features K``: only the first K features of each layer, for a quick look).
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


def floor_flops(model, layer, x_shape: tuple[int, ...]) -> tuple[float, float, float]:
    """FLOPs for inputs of ``x_shape`` through ``layer``'s graph: (the forward pass, one
    feature's backward pass at the switches, the same counted dense)."""
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
    fwd = sparse = dense = 0.0
    for op in g.get_operations():
        if op.type not in CONVS or not op.name.startswith("f/"):
            continue
        macs = _macs(op)
        fwd += macs
        channels = int(op.outputs[0].shape[-1])
        one = macs / channels if op.name in top and channels == layer.n_features else macs
        dense += one
        sparse += one * pooled_share(op)
    return 2.0 * fwd, 2.0 * sparse, 2.0 * dense


def time_layer(model, track, layer, n: int) -> tuple[float, float, str]:
    """(s per feature for the first n features in one call, s of a first call with one
    feature, which compiles the layer's program, mode).  A second call with two features
    lets the backward function generalise over the number of features (TensorFlow traces it
    again for a second batch size) before the timed call."""
    t0 = time.perf_counter()
    deconvolve(model, track=track, layer=layer.name, features=[0])
    first = time.perf_counter() - t0
    deconvolve(model, track=track, layer=layer.name, features=list(range(min(2, n))))
    t0 = time.perf_counter()
    res = deconvolve(model, track=track, layer=layer.name, features=list(range(n)))
    return (time.perf_counter() - t0) / n, first, res.mode


def bf16_against_fp32(names: list[str], y: np.ndarray, sr: int, n: int = 16) -> None:
    """The deepest layer of each model, float32 and bfloat16 timed one after the other in
    one process (first n features, each once compiled), and how far bfloat16's masks are
    from float32's (relative L2, median over features)."""
    print("\n## --precision bfloat16 against float32 (the deepest layer, first "
          f"{n} features)")
    print("| model | layer | float32 s | bfloat16 s | speedup | masks' relative L2 (median) |")
    print("|---|---|---:|---:|---:|---:|")
    for name in names:
        model = MODELS[name]()
        track = model.representation.prepare(y, sr)
        layer = model.layers[-1]
        k = min(n, layer.n_features)
        out = {}
        for precision in ("float32", "bfloat16", "float32", "bfloat16"):
            deconvolve(model, track=track, layer=layer.name, features=[0], precision=precision)
            t0 = time.perf_counter()
            res = deconvolve(model, track=track, layer=layer.name, features=list(range(k)),
                             precision=precision)
            out.setdefault(precision, []).append((time.perf_counter() - t0, res.masks))
        f32 = min(t for t, _ in out["float32"])
        b16 = min(t for t, _ in out["bfloat16"])
        a, b = out["float32"][0][1], out["bfloat16"][0][1]
        err = [np.linalg.norm(b[i] - a[i]) / np.linalg.norm(a[i]) for i in range(k)
               if np.linalg.norm(a[i]) > 0]
        spread = f"{np.median(err):.1e}" if err else "(every mask zero)"
        print(f"| {name} | {layer.name} | {f32:.2f} | {b16:.2f} | {f32 / b16:.2f}x | {spread} |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--bf16", action="store_true",
                    help="also time --precision bfloat16 against float32 on each model's deepest layer")
    ap.add_argument("--features", type=int, default=0,
                    help="only the first K features of each layer (default: all)")
    args = ap.parse_args()
    y, sr, what = the_track()
    gflops = machine_conv_gflops()
    print(f"track: {what}; machine conv throughput (fp32 Conv2D): {gflops:.0f} GFLOP/s")
    summary, worst = [], []
    for name in args.models.split(","):
        model = MODELS[name]()
        track = model.representation.prepare(y, sr)
        print(f"\n## {name}: {model.representation.describe()}")
        print("| layer | features | mode | s per feature | first call s | floor ms per feature "
              "| ratio | dense floor ms | ratio to dense |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
        spent = floor_total = 0.0
        ratios = []
        for layer in model.layers:
            k = min(args.features or layer.n_features, layer.n_features)
            per, first, mode = time_layer(model, track, layer, k)
            x, _ = model_input(model, track.frames, whole=mode == "whole",
                               stride=layer.stride[0] or 1)
            fwd, bwd, dense = floor_flops(model, layer, x.shape)
            floor = (fwd / layer.n_features + bwd) / (gflops * 1e9)
            dense_floor = (fwd / layer.n_features + dense) / (gflops * 1e9)
            ratio = per / floor if floor > 0 else float("nan")
            ratios.append((layer.name, ratio))
            spent += per * layer.n_features
            floor_total += floor * layer.n_features
            print(f"| {layer.name} | {layer.n_features} | {mode} | {per:.4f} | {first:.2f} | "
                  f"{1000 * floor:.3f} | {ratio:.1f}x | {1000 * dense_floor:.3f} | "
                  f"{per / dense_floor:.2f}x |", flush=True)
        summary.append((name, len(model.layers), spent, floor_total))
        worst.extend((ratio, name, layer) for layer, ratio in ratios)
    print("\n| model | layers | s for every feature of every layer | floor s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, n, spent, floor in summary:
        print(f"| {name} | {n} | {spent:.1f} | {floor:.2f} | {spent / floor:.1f}x |")
    if args.bf16:
        bf16_against_fp32(args.models.split(","), y, sr)
    ratio, name, layer = max(w for w in worst if np.isfinite(w[0]))
    print(f"\nreal models: worst layer {ratio:.2f}x its floor ({name} {layer})")


if __name__ == "__main__":
    main()
