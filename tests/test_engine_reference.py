"""The engine against an independent numpy deconvnet (switches, rectification, flipped kernels)."""

from __future__ import annotations

import numpy as np
import pytest

from mirdeconv.adapters.keras import from_keras
from mirdeconv.engine import deconvolve
from mirdeconv.representations import LinearSpectrogram, TrackInput

N_BANDS, N_FRAMES = 24, 32
CHANNELS = (4, 6, 8)


def np_conv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray | float = 0.0) -> np.ndarray:
    """3x3 'same' cross-correlation: x (H, W, Cin), w (3, 3, Cin, Cout) -> (H, W, Cout)."""
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(0, 1))  # H, W, Cin, 3, 3
    return np.einsum("hwcij,ijco->hwo", win, w) + b


def np_pool_switches(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pool; switches = index 0..3 of the first maximum in row-major window order."""
    H, W, C = x.shape
    win = x.reshape(H // 2, 2, W // 2, 2, C).transpose(0, 2, 4, 1, 3).reshape(H // 2, W // 2, C, 4)
    return win.max(axis=-1), win.argmax(axis=-1)


def np_unpool(g: np.ndarray, switches: np.ndarray) -> np.ndarray:
    h, w, C = g.shape
    out = np.zeros((h, w, C, 4))
    np.put_along_axis(out, switches[..., None], g[..., None], axis=-1)
    return out.reshape(h, w, C, 2, 2).transpose(0, 3, 1, 4, 2).reshape(2 * h, 2 * w, C)


def np_deconvnet(x: np.ndarray, weights: list, depth: int, feature: int) -> np.ndarray:
    """Zeiler-Fergus deconvnet of feature ``feature`` of block ``depth`` (1-based)."""
    a = x[..., None].astype(np.float64)
    switches = []
    for w, b in weights[:depth]:
        a, s = np_pool_switches(np.maximum(np_conv_same(a, w, b), 0.0))
        switches.append(s)
    g = np.zeros_like(a)
    g[..., feature] = a[..., feature]
    for (w, _), s in zip(reversed(weights[:depth]), reversed(switches)):
        g = np.maximum(np_unpool(g, s), 0.0)                    # unpool, then rectify
        g = np_conv_same(g, w[::-1, ::-1].transpose(0, 1, 3, 2))  # flipped, channels swapped
    return g[..., 0]


@pytest.fixture(scope="module")
def small_net(keras):
    rng = np.random.default_rng(7)
    inp = keras.Input((N_BANDS, N_FRAMES, 1))
    x = inp
    weights = []
    cin = 1
    for i, c in enumerate(CHANNELS):
        conv = keras.layers.Conv2D(c, 3, padding="same", activation="relu", name=f"conv{i + 1}")
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(conv(x))
        w = rng.standard_normal((3, 3, cin, c)).astype(np.float32) / np.sqrt(9 * cin)
        b = (0.1 * rng.standard_normal(c)).astype(np.float32)
        weights.append((w, b))
        cin = c
    model = keras.Model(inp, x)
    for i, (w, b) in enumerate(weights):
        model.get_layer(f"conv{i + 1}").set_weights([w, b])
    rep = LinearSpectrogram(sr=8000, n_fft=2 * (N_BANDS - 1), hop_length=16)
    fm = from_keras(model, rep)
    X = rng.standard_normal((N_BANDS, N_FRAMES)).astype(np.float32)
    analysis = TrackInput(frames=X.T.copy(), stft=np.zeros((N_BANDS, N_FRAMES), np.complex64),
                        audio=np.zeros(16 * N_FRAMES, np.float32), sr=8000, representation=rep)
    return fm, weights, X, analysis


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_deconvnet_equals_numpy_reference(small_net, depth):
    fm, weights, X, analysis = small_net
    res = deconvolve(fm, track=analysis, layer=f"pool{depth}", features=None)
    assert res.masks.shape == (CHANNELS[depth - 1], N_FRAMES, N_BANDS)
    n_checked = 0
    for k in range(CHANNELS[depth - 1]):
        ref = np_deconvnet(X, weights, depth, k).T          # (frames, bands)
        got = res.mask(k)
        scale = np.abs(ref).max()
        if scale == 0:
            assert res.dead[k] and not got.any()
            continue
        n_checked += 1
        assert np.abs(got - ref).max() <= 1e-5 * scale, f"layer {depth} feature {k}"
    assert n_checked >= CHANNELS[depth - 1] - 1  # a random net keeps (nearly) every feature alive


def test_deconvnet_reference_has_negative_values(small_net):
    """The final transposed convolution is not rectified: the mask is real-valued."""
    fm, weights, X, analysis = small_net
    ref = np_deconvnet(X, weights, 2, 0)
    got = deconvolve(fm, track=analysis, layer="pool2", features=[0]).masks[0]
    assert (ref < 0).any() and (got < 0).any()


def _random_batch_norms(keras, model, rng):
    """``model`` with every batch norm's statistics and scales drawn at random."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([1 + 0.3 * rng.standard_normal(n), 0.2 * rng.standard_normal(n),
                               0.3 * rng.standard_normal(n), 0.5 + rng.random(n)])
    return model


def _front_end(keras, rng):
    """A musicnn-style front end: a tall conv (12 x 5) and a one-band conv (1 x 9) over 40
    bands, each ReLU -> batch norm -> max-pool over all its bands, concatenated, then a
    mid-end conv."""
    L = keras.layers
    inp = keras.Input((40, 24, 1))
    x = L.BatchNormalization(name="bn_in")(inp)
    branches = []
    for name, k in (("tall", (12, 5)), ("flat", (1, 9))):
        b = L.ZeroPadding2D((0, k[1] // 2), name=f"pad_{name}")(x)     # time, as musicnn
        b = L.Conv2D(6, k, activation="relu", name=name)(b)
        b = L.BatchNormalization(name=f"bn_{name}")(b)
        branches.append(L.MaxPooling2D((b.shape[1], 1), name=f"pool_{name}")(b))
    m = L.Conv2D(5, (1, 3), padding="same", activation="relu", name="mid")(
        L.Concatenate(name="cat")(branches))
    model = keras.Model(inp, m)
    return _random_batch_norms(keras, model, rng)


def _ways(keras, build, seed, method, monkeypatch):
    """The net ``build(keras, rng)`` on a 40-band, 24-frame random input: ``run(only) ->
    ({pool: way taken}, [masks of "mid" for targets map and max])`` with only the named
    ways of the fused first layer."""
    import mirdeconv.engine.fused as fused_mod
    from mirdeconv.engine import compiled, forget

    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    rep = LinearSpectrogram(sr=8000, n_fft=2 * (40 - 1), hop_length=16)
    fm = from_keras(build(keras, rng), rep)
    X = rng.standard_normal((40, 24)).astype(np.float32)
    track = TrackInput(frames=X.T.copy(), stft=np.zeros((40, 24), np.complex64),
                       audio=np.zeros(16 * 24, np.float32), sr=8000, representation=rep)
    ways, layer = dict(fused_mod.FIRST_LAYER_WAYS), fm.layer("mid")

    def run(only: list[str]) -> tuple[dict, list]:
        forget(fm)
        monkeypatch.setattr(fused_mod, "FIRST_LAYER_WAYS", {k: ways[k] for k in only})
        prog = compiled(fm, layer, method, "float32")
        taken = {st.node.name.split("/")[-2]: st.fused_way for st in prog.steps if st.fused_way}
        return taken, [deconvolve(fm, track=track, layer="mid", method=method, target=t).masks
                       for t in ("map", "max")]

    return run


@pytest.mark.parametrize("method", ["deconvnet", "guided", "saliency"])
def test_pools_over_all_bands_fuse_and_equal_the_dense_path(keras, monkeypatch, method):
    """Both branches' pools over all their bands fuse: the tall branch's (29 cells of a 12 x 5
    kernel: 290 per-cell weights or 60 sparse taps per cell and channel against 1,740
    multiply-adds dense) and the one-band branch's (40 cells of a 1 x 9 kernel: 9 sparse taps
    against 360; its per-cell weights would be as many, 360).  Each way alone, and the
    cheapest of them, equals the all-dense engine to 1e-5 for both targets."""
    run = _ways(keras, _front_end, 11, method, monkeypatch)

    taken, dense = run([])
    assert taken == {} and all(np.abs(d).max() > 0 for d in dense)
    expected = {"cells": {"pool_tall_1": "cells"},
                "sparse": {"pool_tall_1": "sparse", "pool_flat_1": "sparse"},
                "cells,sparse": {"pool_tall_1": "sparse", "pool_flat_1": "sparse"}}
    for only, want in expected.items():
        taken, got = run(only.split(","))
        assert taken == want, (only, taken)
        for g, d in zip(got, dense):
            np.testing.assert_allclose(g, d, rtol=1e-5, atol=1e-5 * np.abs(d).max())


def _overlapping_pool_net(keras, rng, pool, strides, padding):
    """musicnn's vgg in small: conv 3 x 3 from one channel, ReLU, batch norm, then a max-pool
    whose windows overlap (4 x 1 every 2 x 2, as vgg's first pool; or 3 x 3 every 2 x 2),
    then a mid conv."""
    L = keras.layers
    inp = keras.Input((40, 24, 1))
    x = L.BatchNormalization(name="bn_in")(inp)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="first")(x)
    x = L.BatchNormalization(name="bn_first")(x)
    x = L.MaxPooling2D(pool, strides=strides, padding=padding, name="pool")(x)
    m = L.Conv2D(5, 3, padding="same", activation="relu", name="mid")(x)
    model = keras.Model(inp, m)
    return _random_batch_norms(keras, model, rng)


@pytest.mark.parametrize("method", ["deconvnet", "guided", "saliency"])
@pytest.mark.parametrize("pool,strides,padding", [((4, 1), (2, 2), "valid"), (3, (2, 2), "same")])
def test_overlapping_pools_fuse_and_equal_the_dense_path(keras, monkeypatch, method, pool, strides,
                                                         padding):
    """A max-pool whose windows overlap fuses with the first layer below it (each way): the
    windows that pick the same switch (common: after a ReLU, ties at zero) are merged before
    the chain's rectification, so the result equals the dense path (unpool, then rectify) to
    1e-5, for both targets."""
    import mirdeconv.engine.fused as fused_mod

    run = _ways(keras, lambda k, r: _overlapping_pool_net(k, r, pool, strides, padding), 12,
                method, monkeypatch)
    taken, dense = run([])
    assert taken == {} and all(np.abs(d).max() > 0 for d in dense)
    for only in (["cells", "sparse"], ["sparse"]):
        if only == ["sparse"]:            # a small pool takes the sparse way only when told
            monkeypatch.setattr(fused_mod, "SPARSE_COST", 0)
            monkeypatch.setattr(fused_mod, "MAX_FUSED_POOL", 0)
        taken, got = run(only)
        assert list(taken.values()) == only[:1]
        for g, d in zip(got, dense):
            np.testing.assert_allclose(g, d, rtol=1e-5, atol=1e-5 * np.abs(d).max())
