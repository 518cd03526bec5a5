"""Engine vs the plain TensorFlow reference of docs/method.md §6.1, measured side by side.

Choi-style net (input 96 x 256 x 1; five blocks of 3x3 'same' conv + ReLU + 2x2 max-pool
with 32, 32, 64, 64, 64 maps; fixed seed), all 64 features of layer 3, targets ``map``
and ``max``.  The reference tiles the input 64 times, uses a custom-gradient ReLU
(deconvnet rule) and one GradientTape inside a tf.function.  Both are timed as the
median of 5 runs after a warm-up, checked to agree to 1e-5, and the engine's effective
GFLOP/s (dense-equivalent work / time) is printed next to the machine's measured conv throughput.

Run: python benchmarks/engine_vs_reference.py
"""

from __future__ import annotations

import numpy as np
from timing import REPEATS, median_ms, side_by_side_ms  # a script beside this one

from mirdeconv import backend
from mirdeconv.adapters.keras import from_keras
from mirdeconv.engine import deconvolve
from mirdeconv.representations import MelSpectrogram, TrackInput

tf = backend.tensorflow()
keras = backend.keras()

BANDS, FRAMES = 96, 256
CHANNELS = (32, 32, 64, 64, 64)
LAYER = 3


def build(seed: int = 2016):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((BANDS, FRAMES, 1))
    x = inp
    for i, c in enumerate(CHANNELS):
        x = keras.layers.Conv2D(c, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return keras.Model(inp, x)


def reference_fn(model, target: str):
    """docs/method.md §6.1's reference: tiled input, custom-gradient ReLU, one tape, one tf.function."""
    ws = [model.get_layer(f"conv{i + 1}").get_weights() for i in range(LAYER)]
    ws = [(tf.constant(w), tf.constant(b)) for w, b in ws]

    @tf.custom_gradient
    def deconv_relu(x):
        return tf.nn.relu(x), lambda dy: tf.nn.relu(dy)

    @tf.function
    def run(x):
        c = CHANNELS[LAYER - 1]
        xt = tf.tile(x, [c, 1, 1, 1])
        with tf.GradientTape() as tape:
            tape.watch(xt)
            a = xt
            for w, b in ws:
                a = tf.nn.max_pool2d(deconv_relu(tf.nn.conv2d(a, w, 1, "SAME") + b), 2, 2, "VALID")
            sel = tf.transpose(a, [0, 3, 1, 2])                        # (c, c, h, w)
            own = tf.linalg.diag_part(tf.transpose(sel, [2, 3, 0, 1]))  # (h, w, c)
            own = tf.transpose(own, [2, 0, 1])                          # (c, h, w)
            if target == "max":
                flat = tf.reshape(own, [c, -1])
                own = tf.reshape(tf.one_hot(tf.argmax(flat, 1), tf.shape(flat)[1]) * flat,
                                 tf.shape(own))
            seed = tf.transpose(tf.linalg.diag(tf.transpose(own, [1, 2, 0])), [2, 0, 1, 3])
            obj = tf.reduce_sum(a * tf.stop_gradient(seed))
        return tape.gradient(obj, xt)

    return run


def conv_flops(h, w, cin, cout, k=3):
    return 2.0 * h * w * k * k * cin * cout


def engine_flops(n_features: int) -> float:
    """Forward once up to the layer, backward (input gradients) for every feature, counted as
    dense convolutions (the engine skips some of that work, so this is an effective rate)."""
    h, w, cin, total_fwd, total_bwd = BANDS, FRAMES, 1, 0.0, 0.0
    for c in CHANNELS[:LAYER]:
        f = conv_flops(h, w, cin, c)
        total_fwd += f
        total_bwd += f * n_features
        h, w, cin = h // 2, w // 2, c
    return total_fwd + total_bwd


def machine_conv_gflops() -> float:
    x = tf.random.normal([64, 48, 128, 32])
    k = tf.random.normal([3, 3, 32, 32])
    f = tf.function(lambda: tf.nn.conv2d(x, k, 1, "SAME"))
    ms = median_ms(lambda: f().numpy())
    return conv_flops(48, 128, 32, 32) * 64 / (ms / 1000) / 1e9


def main() -> None:
    model = build()
    rep = MelSpectrogram(sr=16000, n_fft=512, hop_length=256, n_mels=BANDS, compression="log10")
    fm = from_keras(model, rep)
    rng = np.random.default_rng(0)
    X = np.log10(1 + 1e4 * rng.random((FRAMES, BANDS)) ** 4).astype(np.float32)  # (frames, bands)
    track = TrackInput(frames=X, stft=np.zeros((257, FRAMES), np.complex64),
                        audio=np.zeros(FRAMES * 256, np.float32), sr=16000, representation=rep)
    x = fm.to_input(X[None])
    n = CHANNELS[LAYER - 1]
    machine = machine_conv_gflops()
    rows = []
    for target in ("map", "max"):
        ref = reference_fn(model, target)
        ref_out = fm.from_input(ref(tf.constant(x)).numpy())           # (c, frames, bands)
        eng = lambda t=target: deconvolve(fm, track=track, layer=f"pool{LAYER}",  # noqa: E731
                                          features="all", target=t)
        got = eng().masks
        err = np.abs(got - ref_out).max() / np.abs(ref_out).max()
        assert err <= 1e-5, f"engine and reference disagree ({target}): {err:.2e}"
        t_ref, t_eng = side_by_side_ms([lambda r=ref: r(tf.constant(x)).numpy(), eng])
        gflops = engine_flops(n) / (t_eng / 1000) / 1e9
        rows.append((target, t_ref, t_eng, err, gflops))
    print(f"Choi-style net, input {BANDS}x{FRAMES}x1, layer {LAYER}, all {n} features; "
          f"median of {REPEATS} after a warm-up")
    print(f"machine conv throughput (Conv2D 64x48x128x32 -> 32, fp32): {machine:.0f} GFLOP/s")
    print("| target | reference ms | engine ms | speedup | max rel diff | engine effective GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for target, t_ref, t_eng, err, gf in rows:
        print(f"| {target} | {t_ref:.1f} | {t_eng:.1f} | {t_ref / t_eng:.2f}x | {err:.1e} | {gf:.0f} |")
    total = sum(r[1] for r in rows) / sum(r[2] for r in rows)
    print(f"speedup vs reference: {total:.2f}x")


if __name__ == "__main__":
    main()
