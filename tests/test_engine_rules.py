"""Every backward rule against tf.GradientTape with the matching non-linearity rule.

A "zoo" net holds batch norm (inference), ELU, LeakyReLU, ReLU, concatenation, a residual
add, average pooling, overlapping and SAME max-pooling, zero padding, cropping, a
depthwise conv, a strided conv and a transpose.  For each method the engine must equal
GradientTape on the same net in which every non-linearity carries the method's rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from mirdeconv import backend
from mirdeconv.adapters.keras import from_keras
from mirdeconv.engine import compiled, deconvolve
from mirdeconv.representations import LinearSpectrogram, TrackInput

BANDS, FRAMES = 40, 64
LAYERS = ["elu", "leaky", "concat", "add", "avgpool", "cropped", "depthwise_act",
          "strided_act", "overlap_pool", "permuted"]


def _ruled(kind: str, method: str):
    """A non-linearity whose gradient follows the method's rule."""
    tf = backend.tensorflow()
    base = {"relu": tf.nn.relu, "elu": tf.nn.elu,
            "leaky": lambda x: tf.nn.leaky_relu(x, alpha=0.1)}[kind]

    def deriv(x):
        if kind == "relu":
            return tf.cast(x > 0, x.dtype)
        if kind == "elu":
            return tf.where(x > 0, tf.ones_like(x), tf.exp(x))
        return tf.where(x > 0, tf.ones_like(x), 0.1 * tf.ones_like(x))

    @tf.custom_gradient
    def f(x):
        def grad(dy):
            if method == "deconvnet":
                return tf.nn.relu(dy)
            if method == "guided":
                return tf.nn.relu(dy) * deriv(x)
            return dy * deriv(x)

        return base(x), grad

    return f


def build_zoo(keras, act):
    L = keras.layers
    inp = keras.Input((BANDS, FRAMES, 1))
    x = L.BatchNormalization(name="bn_in")(inp)
    a = L.Conv2D(6, 3, padding="same", name="conv_a")(x)
    a = L.BatchNormalization(name="bn_a")(a)
    a = act("elu", "elu")
    a = a(L.BatchNormalization(name="bn_a2")(L.Conv2D(6, 3, padding="same", name="conv_a2")(x)))
    b = act("leaky", "leaky")(L.Conv2D(5, (5, 3), padding="same", name="conv_b")(x))
    c = L.Concatenate(name="concat")([a, b])                                   # 11 maps
    c = L.MaxPooling2D(2, name="pool_c")(c)                                    # 20 x 32
    d = act("relu", "relu_d")(L.Conv2D(11, 3, padding="same", name="conv_d")(c))
    e = L.Add(name="add")([c, d])
    e = L.AveragePooling2D(2, name="avgpool")(e)                               # 10 x 16
    f = L.ZeroPadding2D(((1, 0), (0, 1)), name="pad")(e)                       # 11 x 17
    f = L.Cropping2D(((0, 1), (1, 0)), name="cropped")(f)                      # 10 x 16
    f = L.DepthwiseConv2D(3, padding="valid", name="depthwise")(f)             # 8 x 14
    f = act("relu", "depthwise_act")(f)
    g = L.Conv2D(9, 3, strides=2, padding="same", name="strided")(f)           # 4 x 7
    g = act("relu", "strided_act")(g)
    g = L.MaxPooling2D(3, strides=2, padding="same", name="overlap_pool")(g)   # 2 x 4
    h = L.Permute((1, 2, 3), name="permuted")(g)
    return keras.Model(inp, h)


@pytest.fixture(scope="module")
def zoo(keras):
    keras.utils.set_random_seed(3)
    L = keras.layers

    def plain(kind, name):
        return {"relu": L.ReLU, "elu": L.ELU,
                "leaky": lambda name: L.LeakyReLU(negative_slope=0.1, name=name)}[kind](name=name)

    model = build_zoo(keras, plain)
    rng = np.random.default_rng(5)
    for layer in model.layers:  # batch norm with non-trivial statistics
        if isinstance(layer, L.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([1 + 0.3 * rng.standard_normal(n), 0.2 * rng.standard_normal(n),
                               0.3 * rng.standard_normal(n), 0.5 + rng.random(n)])
    rep = LinearSpectrogram(sr=8000, n_fft=2 * (BANDS - 1), hop_length=16)
    fm = from_keras(model, rep, layers=LAYERS)
    X = rng.standard_normal((BANDS, FRAMES)).astype(np.float32)
    analysis = TrackInput(frames=X.T.copy(), stft=np.zeros((BANDS, FRAMES), np.complex64),
                        audio=np.zeros(16 * FRAMES, np.float32), sr=8000, representation=rep)
    return model, fm, X, analysis


def tape_reference(keras, model, method, layer, X, target):
    """GradientTape through a copy of the net whose non-linearities carry the method's rule:
    (F, frames, bands)."""
    return _tape_maps(keras, build_zoo, model, layer, X, method, target).transpose(0, 2, 1)


@pytest.mark.parametrize("method", ["saliency", "guided", "deconvnet"])
@pytest.mark.parametrize("layer", LAYERS)
def test_engine_matches_gradient_tape(zoo, keras, method, layer):
    model, fm, X, analysis = zoo
    res = deconvolve(fm, track=analysis, layer=layer, method=method)
    ref = tape_reference(keras, model, method, layer, X, "map")
    assert res.masks.shape == ref.shape
    scale = np.abs(ref).max()
    assert scale > 0
    np.testing.assert_allclose(res.masks, ref, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("layer", ["concat", "strided_act"])
def test_max_target_matches_gradient_tape(zoo, keras, layer):
    model, fm, X, analysis = zoo
    res = deconvolve(fm, track=analysis, layer=layer, method="deconvnet", target="max")
    ref = tape_reference(keras, model, "deconvnet", layer, X, "max")
    np.testing.assert_allclose(res.masks, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    # one unit: the mask is confined to that unit's receptive field
    info = fm.layer(layer)
    for m in res.masks:
        rows = np.flatnonzero(np.abs(m).sum(axis=1))
        if rows.size:
            assert rows.max() - rows.min() < info.receptive_field[0]


def test_layer_geometry(zoo):
    _, fm, _, _ = zoo
    info = {li.name: li for li in fm.layers}
    assert info["concat"].n_features == 11 and info["concat"].axes == "NFTC"
    assert info["concat"].receptive_field == (3, 5)  # 3 frames (time) x 5 bins (freq)
    assert info["avgpool"].stride == (4, 4)
    assert info["avgpool"].time_agnostic          # conv, pool, concat, add, BN: fully conv
    assert not info["cropped"].time_agnostic      # a crop with fixed indices is not


def build_midend(keras, act):
    """musicnn's mid end in small: 8 bands over 24 frames (time first), a 5 x 8 kernel over
    all 8 bands (one output column: the full-width rule), its 6 maps laid back as bands, a
    second full-width 3 x 6 kernel over them."""
    L = keras.layers
    inp = keras.Input((24, 8, 1))
    x = L.ZeroPadding2D(((2, 2), (0, 0)), name="pad1")(inp)
    x = act("relu", "full1")(L.Conv2D(6, (5, 8), name="conv1")(x))            # 24 x 1 x 6
    x = L.BatchNormalization(name="bn1")(x)
    x = L.Permute((1, 3, 2), name="as_bands")(x)                               # 24 x 6 x 1
    x = L.ZeroPadding2D(((1, 1), (0, 0)), name="pad2")(x)
    x = act("relu", "full2")(L.Conv2D(4, (3, 6), name="conv2")(x))            # 24 x 1 x 4
    return keras.Model(inp, x)


def _tape_maps(keras, build, model, layer, X, method, target="map"):
    """Every feature's map of ``layer`` by GradientTape through ``build(keras, act)`` with
    the method's rule at each non-linearity, weights from ``model``: (F, *X.shape)."""
    tf = backend.tensorflow()
    L = keras.layers
    ref_model = build(keras, lambda kind, name: L.Activation(_ruled(kind, method), name=name))
    ref_model.set_weights(model.get_weights())
    sub = keras.Model(ref_model.inputs, ref_model.get_layer(layer).output)
    x = tf.constant(X.reshape((1,) + tuple(ref_model.inputs[0].shape[1:])))
    a = sub(x, training=False).numpy()
    out = []
    for f in range(a.shape[-1]):
        seed = np.zeros_like(a)
        seed[..., f] = a[..., f]
        if target == "max":
            k = np.argmax(a[..., f])
            flat = np.zeros(a[..., f].size, np.float32)
            flat[k] = a[..., f].ravel()[k]
            seed[..., f] = flat.reshape(a[..., f].shape)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = sub(x, training=False)
        out.append(tape.gradient(y, x, output_gradients=tf.constant(seed)).numpy().reshape(X.shape))
    return np.stack(out)


def _with_batch_norm(model, name, rng):
    n = model.get_layer(name).get_weights()[0].shape[0]
    model.get_layer(name).set_weights([1 + 0.3 * rng.standard_normal(n), 0.2 * rng.standard_normal(n),
                                       0.3 * rng.standard_normal(n), 0.5 + rng.random(n)])


@pytest.mark.parametrize("method", ["saliency", "guided", "deconvnet"])
@pytest.mark.parametrize("layer", ["full1", "full2"])
def test_full_width_kernels_match_gradient_tape(keras, method, layer):
    """A kernel as wide as its input runs as a convolution along time with the width in the
    channels (compact below the seed for the top one, dense for the one under it); both
    equal GradientTape."""
    keras.utils.set_random_seed(4)
    L = keras.layers
    model = build_midend(keras, lambda kind, name: L.ReLU(name=name))
    rng = np.random.default_rng(9)
    _with_batch_norm(model, "bn1", rng)
    rep = LinearSpectrogram(sr=8000, n_fft=2 * (8 - 1), hop_length=4)
    fm = from_keras(model, rep, input_axes="NTFC", layers=["full1", "full2"])
    convs = [s for s in compiled(fm, fm.layer(layer), method, "float32").steps if s.op == "Conv2D"]
    assert convs and all("full_width" in s.rule.__qualname__ for s in convs)
    X = rng.standard_normal((24, 8)).astype(np.float32)
    track = TrackInput(frames=X, stft=np.zeros((8, 24), np.complex64),
                       audio=np.zeros(4 * 24, np.float32), sr=8000, representation=rep)
    res = deconvolve(fm, track=track, layer=layer, method=method)
    ref = _tape_maps(keras, build_midend, model, layer, X, method)
    assert res.masks.shape == ref.shape and np.abs(ref).max() > 0
    np.testing.assert_allclose(res.masks, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def build_sample_level(keras, act, padding="same"):
    """A sample-level first layer as CREPE's: 40 samples at stride 4 into 6 maps, ReLU,
    batch norm, a 2 x 1 max-pool; then a 3 x 1 conv."""
    L = keras.layers
    inp = keras.Input((256, 1))
    x = L.Reshape((256, 1, 1), name="as_image")(inp)
    x = L.Conv2D(6, (40, 1), strides=(4, 1), padding=padding, name="conv1")(x)
    x = act("relu", "relu1")(x)
    x = L.MaxPooling2D((2, 1), name="pool1")(L.BatchNormalization(name="bn1")(x))
    x = act("relu", "relu2")(L.Conv2D(5, (3, 1), padding="same", name="conv2")(x))
    return keras.Model(inp, x)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("method", ["saliency", "guided", "deconvnet"])
def test_a_strided_first_layer_matches_gradient_tape(keras, method, padding):
    """A waveform net's strided first layer (40 samples at stride 4) below the seed takes the
    compact strided rule (blocks of a banded Toeplitz matrix) for the layers down to its
    pool, the polyphase rule below a deeper seed; every map equals GradientTape, for both
    targets."""
    from functools import partial

    from mirdeconv.representations import Waveform

    keras.utils.set_random_seed(6)
    L = keras.layers
    build = partial(build_sample_level, padding=padding)
    model = build(keras, lambda kind, name: L.ReLU(name=name))
    rng = np.random.default_rng(8)
    _with_batch_norm(model, "bn1", rng)
    rep = Waveform(sr=8000, n_fft=64, hop_length=16)
    layers = ["conv1", "relu1", "pool1", "relu2"]
    fm = from_keras(model, rep, input_axes="NTC", layers=layers)
    X = rng.standard_normal((256, 1)).astype(np.float32)
    track = TrackInput(frames=X, stft=np.zeros((33, 17), np.complex64), audio=X[:, 0], sr=8000,
                       representation=rep)
    for layer in layers:
        prog = compiled(fm, fm.layer(layer), method, "float32")
        compact_conv = prog.compact[-1].node.name if prog.compact else ""
        assert ("conv1" in compact_conv) == (layer != "relu2"), (layer, compact_conv)
        for target in ("map", "max"):
            res = deconvolve(fm, track=track, layer=layer, method=method, target=target)
            ref = _tape_maps(keras, build, model, layer, X, method, target)
            assert res.masks.shape == ref.shape and np.abs(ref).max() > 0
            np.testing.assert_allclose(res.masks, ref, rtol=0, atol=1e-5 * np.abs(ref).max(),
                                       err_msg=f"{layer} {target}")


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("kh,stride,cin,height", [(40, 4, 1, 256), (7, 3, 2, 50), (5, 2, 3, 33)])
def test_a_regrouped_strided_conv_equals_tensorflows(padding, kh, stride, cin, height):
    """The forward pass runs a strided convolution from few channels over the input's rows
    regrouped ``stride`` at a time (TensorFlow's own is 7x slower on CREPE's first layer):
    the same values."""
    from mirdeconv.engine.graphrun import regrouped_conv

    tf = backend.tensorflow()
    rng = np.random.default_rng(kh)
    x = tf.constant(rng.standard_normal((2, height, 3, cin)).astype(np.float32))
    w = rng.standard_normal((kh, 1, cin, 5)).astype(np.float32)
    want = tf.nn.conv2d(x, w, [1, stride, 1, 1], padding).numpy()
    got = regrouped_conv(tf, x, w, stride, padding).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("kh,kw,cout", [(3, 3, 32), (1, 5, 64), (4, 2, 33)])
def test_the_matmul_rule_equals_a_transposed_convolution(padding, kh, kw, cout):
    """A tiny kernel from one channel into many (a spectrogram net's first conv when no pool
    follows it) runs backwards as one matmul and shifted planes: TensorFlow's transposed
    convolution's values, for 3 features of 2 items."""
    from mirdeconv.engine.rules.conv import _matmul_rule

    tf = backend.tensorflow()
    rng = np.random.default_rng(kh * kw + cout)
    H, W = 11, 14
    w = rng.standard_normal((kh, kw, 1, cout)).astype(np.float32)
    Ho, Wo = (H, W) if padding == "SAME" else (H - kh + 1, W - kw + 1)
    g = rng.standard_normal((3, 2, Ho, Wo, cout)).astype(np.float32)  # F, N, Ho, Wo, C
    want = tf.nn.conv2d_transpose(g.reshape(6, Ho, Wo, cout), w, [6, H, W, 1], 1, padding)
    rule = _matmul_rule(tf, w.shape, padding, [])
    got = rule(tf.constant(g), [tf.constant(w), tf.constant([2, H, W, 1])], 3)[0].numpy()
    assert got.shape == (3, 2, H, W, 1)
    np.testing.assert_allclose(got.reshape(6, H, W, 1), want.numpy(), rtol=0,
                               atol=1e-5 * np.abs(want.numpy()).max())


# -- a rule that meets a graph it does not expect -----------------------------------------------
def _one_layer_net():
    keras = backend.keras()
    keras.utils.set_random_seed(3)
    inp = keras.Input((BANDS, FRAMES, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    x = keras.layers.ReLU(name="a1")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
    net = keras.Model(inp, keras.layers.ReLU(name="a2")(x))
    rep = LinearSpectrogram(sr=8000, n_fft=2 * (BANDS - 1), hop_length=16)
    return from_keras(net, rep, input_axes="NFTC")


@pytest.mark.parametrize("when", ["running", "tracing", "compiling"])
def test_a_failing_rule_is_named(monkeypatch, when):
    """Whether a rule fails while compiled, while traced or while it runs, the user gets an
    UnsupportedGraphError that names the operation, its node and the layer, TensorFlow's (or
    the rule's) own error chained, never a raw TensorFlow error."""
    from mirdeconv.engine import table
    from mirdeconv.errors import UnsupportedGraphError

    tf = backend.tensorflow()
    model = _one_layer_net()
    relu = table.RULES["Relu"]

    def broken(ctx, step):
        if when == "compiling":
            raise ValueError("the rule cannot read this node")
        relu(ctx, step)
        if "a1" in step.node.name:
            if when == "running":     # a shape TensorFlow refuses only when it runs
                step.rule = lambda g, sv, F: [tf.debugging.check_numerics(g / 0.0, "the signal")]
            else:                     # ... or already while it is traced
                def traced(g, sv, F):
                    raise ValueError(f"a signal of rank {g.shape.rank} was not expected here")

                step.rule = traced
            step.compact_rule, step.channelwise = None, False

    monkeypatch.setitem(table.RULES, "Relu", broken)
    track = TrackInput(frames=np.random.default_rng(0).standard_normal((FRAMES, BANDS)).astype(np.float32),
                       stft=np.zeros((BANDS, FRAMES), np.complex64), audio=np.zeros(16 * FRAMES, np.float32),
                       sr=8000, representation=model.representation)
    with pytest.raises(UnsupportedGraphError) as info:
        deconvolve(model, track=track, layer="a2", features="0-3", method="saliency")
    msg = str(info.value)
    assert "backward rule of Relu (node " in msg and "a1" in msg and "from layer a2" in msg
    cause = info.value.__cause__
    assert cause is not None and not isinstance(cause, UnsupportedGraphError)
    if when == "running":
        assert isinstance(cause, tf.errors.InvalidArgumentError)
        assert "Graph execution error" not in msg and "the signal" in msg
    elif when == "tracing":
        assert isinstance(cause, ValueError) and "a signal of rank 5 was not expected" in msg
    elif when == "compiling":
        assert isinstance(cause, ValueError) and "the rule cannot read this node" in msg
