"""The coverage matrix: the music CNNs people actually have, each built in Keras 3 (random
weights, fixed seed), loaded, its layers listed with their receptive fields, and every layer
deconvolved with every method against tf.GradientTape:

* saliency = the plain gradient of the plain net;
* guided and deconvnet = the gradient of the same net in which every non-linearity carries
  the method's rule (a custom gradient), composite activations included;
* normalisation (layer, group) with its statistics held fixed (stop_gradient on them).

Inputs are random (no pooling window holds tied maxima, where TensorFlow's implementations
break ties differently)."""

from __future__ import annotations

import numpy as np
import pytest

import mirdeconv
from mirdeconv import backend
from mirdeconv.representations import LinearSpectrogram, TrackInput, Waveform

BANDS, FRAMES = 24, 48
REP = LinearSpectrogram(sr=8000, n_fft=2 * (BANDS - 1), hop_length=16)
#: Raw-waveform nets take samples: 3 ** 6 of them, as a sample-level net takes 3 ** 10.
SAMPLES = 729
WAVE = Waveform(sr=8000)
METHODS = ("saliency", "guided", "deconvnet")


# -- activations, plain and with a method's rule ----------------------------------------------
def _fn(kind):
    keras = backend.keras()
    ops = keras.ops
    return {
        "relu": ops.relu, "elu": ops.elu,
        "gelu": lambda x: ops.gelu(x, approximate=False),
        "gelu_tanh": lambda x: ops.gelu(x, approximate=True),
        "swish": ops.silu, "mish": lambda x: x * ops.tanh(ops.softplus(x)),
        "hard_swish": ops.hard_silu, "erf": ops.erf, "softsign": ops.softsign,
        "sigmoid": ops.sigmoid,
    }[kind]


def ruled(kind, method):
    """``kind`` as a function whose gradient follows ``method``: relu(g) (deconvnet),
    relu(g) * f'(x) (guided), g * f'(x) (saliency)."""
    tf = backend.tensorflow()
    f = _fn(kind)

    @tf.custom_gradient
    def g(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x)
        d = tape.gradient(y, x)

        def grad(dy):
            if method == "deconvnet":
                return tf.nn.relu(dy)
            if method == "guided":
                return tf.nn.relu(dy) * d
            return dy * d

        return y, grad

    return g


class _Act:
    """Builds activation layers: plain (``method=None``), or with a method's rule (and, for
    every method, normalisation statistics held fixed, as the engine documents)."""

    def __init__(self, method=None):
        self.method = method

    def __call__(self, kind, name):
        L = backend.keras().layers
        if self.method is None:
            return L.Activation(_fn(kind), name=name)
        return L.Activation(ruled(kind, self.method), name=name)


def _prelu(act, name):
    """PReLU as a layer: Keras' own when plain; with a rule, the same alpha under a custom
    gradient (relu(g) for deconvnet, relu(g) * f'(x) for guided)."""
    keras = backend.keras()
    if act.method is None:
        return keras.layers.PReLU(shared_axes=[1, 2], name=name)
    tf = backend.tensorflow()

    class RuledPReLU(keras.layers.Layer):
        def build(self, shape):
            self.alpha = self.add_weight(shape=(1, 1, shape[-1]), initializer="zeros", name="alpha")

        def call(self, x):
            alpha, method = tf.convert_to_tensor(self.alpha), act.method

            @tf.custom_gradient
            def f(x):
                d = tf.where(x > 0, tf.ones_like(x), alpha * tf.ones_like(x))

                def grad(dy):
                    r = tf.nn.relu(dy) if method != "saliency" else dy
                    return r * d if method != "deconvnet" else r

                return tf.nn.relu(x) - alpha * tf.nn.relu(-x), grad

            return f(x)

    return RuledPReLU(name=name)


def _norm(kind, act, name):
    """Layer or group normalisation; with a rule, the statistics are held fixed."""
    keras = backend.keras()
    L = keras.layers
    if act.method is None:
        return L.LayerNormalization(name=name) if kind == "layer" else L.GroupNormalization(
            4, name=name)
    tf = backend.tensorflow()

    class FixedStats(keras.layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(shape[-1],), initializer="zeros", name="beta")

        def call(self, x):
            if kind == "layer":
                mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
                eps = 1e-3
                y = (x - tf.stop_gradient(mean)) * tf.math.rsqrt(tf.stop_gradient(var) + eps)
            else:
                s = tf.shape(x)
                c = x.shape[-1]
                g = tf.reshape(x, tf.stack([s[0], s[1], s[2], 4, c // 4]))
                mean, var = tf.nn.moments(g, axes=[1, 2, 4], keepdims=True)
                g = (g - tf.stop_gradient(mean)) * tf.math.rsqrt(tf.stop_gradient(var) + 1e-3)
                y = tf.reshape(g, s)
            return y * self.gamma + self.beta

    return FixedStats(name=name)


# -- the architectures -------------------------------------------------------------------------
def temporal(act):
    """A temporal net over mel frames (Conv1D, time x bands), musicnn-style mid end."""
    L = backend.keras().layers
    inp = backend.keras().Input((None, BANDS))
    x = L.Conv1D(8, 5, padding="same", name="c1")(inp)
    x = act("relu", "a1")(x)
    x = L.MaxPooling1D(2, name="p1")(x)
    x = L.Conv1D(8, 3, padding="same", dilation_rate=2, name="c2")(x)
    x = act("elu", "a2")(x)
    x = L.Conv1D(6, 3, strides=2, padding="same", name="c3")(x)
    return inp, act("relu", "a3")(x)


def dilated(act):
    L = backend.keras().layers
    inp = backend.keras().Input((BANDS, None, 1))
    x = act("relu", "a1")(L.Conv2D(6, 3, padding="same", dilation_rate=2, name="c1")(inp))
    x = L.MaxPooling2D(2, name="p1")(x)
    return inp, act("relu", "a2")(L.Conv2D(6, 3, padding="same", dilation_rate=(1, 3),
                                           name="c2")(x))


def activations(kind):
    def build(act):
        L = backend.keras().layers
        inp = backend.keras().Input((BANDS, None, 1))
        x = L.Conv2D(6, 3, padding="same", name="c1")(inp)
        x = (_prelu(act, "a1") if kind == "prelu" else act(kind, "a1"))(x)
        x = L.MaxPooling2D(2, name="p1")(x)
        x = L.Conv2D(6, 3, padding="same", name="c2")(x)
        return inp, act(kind if kind != "prelu" else "relu", "a2")(x)

    return build


def normalised(kind):
    def build(act):
        L = backend.keras().layers
        inp = backend.keras().Input((BANDS, None, 1))
        x = L.Conv2D(8, 3, padding="same", name="c1")(inp)
        x = act("relu", "a1")(_norm(kind, act, "n1")(x))
        x = L.Conv2D(8, 3, padding="same", name="c2")(x)
        return inp, act("relu", "a2")(x)

    return build


def grouped(act):
    L = backend.keras().layers
    inp = backend.keras().Input((BANDS, None, 1))
    x = act("relu", "a1")(L.Conv2D(8, 3, padding="same", name="c1")(inp))
    x = act("relu", "a2")(L.Conv2D(8, 3, padding="same", groups=2, name="c2")(x))
    return inp, L.MaxPooling2D(2, name="p2")(x)


def causal(act):
    """Causal Conv1D (a Pad, then 'valid') and a strided 'valid' one."""
    L = backend.keras().layers
    inp = backend.keras().Input((None, BANDS))
    x = act("relu", "a1")(L.Conv1D(6, 4, padding="causal", name="c1")(inp))
    return inp, act("relu", "a2")(L.Conv1D(6, 3, strides=2, padding="valid", name="c2")(x))


def elementwise(act):
    """Element-wise functions on their own: erf, softsign."""
    L = backend.keras().layers
    inp = backend.keras().Input((BANDS, None, 1))
    x = act("erf", "a1")(L.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(inp))
    return inp, act("softsign", "a2")(L.Conv2D(4, 3, padding="same", use_bias=False, name="c2")(x))


def branches(act):
    """Channels split into two branches (Split), one convolved again, concatenated back; then
    nearest-neighbour upsampling (Tile)."""
    keras = backend.keras()
    L = keras.layers
    inp = keras.Input((BANDS, None, 1))
    x = act("relu", "a1")(L.Conv2D(8, 3, padding="same", name="c1")(inp))
    a, b = keras.ops.split(x, 2, axis=-1)
    a = act("relu", "a2")(L.Conv2D(4, 3, padding="same", name="c2")(a))
    x = L.MaxPooling2D(2, name="p2")(L.Concatenate(name="cat")([a, b]))
    x = L.UpSampling2D(2, name="up")(x)
    return inp, act("relu", "a3")(L.Conv2D(4, 3, padding="same", name="c3")(x))


def crnn(act):
    """Conv blocks, then a GRU over time: the conv layers deconvolve, the GRU is not pulled
    into their cuts."""
    keras = backend.keras()
    L = keras.layers
    inp = keras.Input((BANDS, FRAMES, 1))
    x = L.MaxPooling2D((2, 2), name="p1")(act("relu", "a1")(L.Conv2D(6, 3, padding="same",
                                                                       name="c1")(inp)))
    x = L.MaxPooling2D((3, 2), name="p2")(act("relu", "a2")(L.Conv2D(6, 3, padding="same",
                                                                       name="c2")(x)))
    x = L.Reshape((FRAMES // 4, 4 * 6))(L.Permute((2, 1, 3))(x))
    return inp, L.Dense(3, activation="sigmoid")(L.GRU(8)(x))


def sample_level(act):
    """A sample-level net on raw audio (Lee et al. 2017): a strided Conv1D (3, stride 3) on
    the samples, then blocks of Conv1D (3) + batch norm + ReLU + MaxPool1D (3)."""
    L = backend.keras().layers
    inp = backend.keras().Input((SAMPLES, 1))
    x = act("relu", "a1")(L.BatchNormalization(name="b1")(L.Conv1D(8, 3, strides=3,
                                                                     name="c1")(inp)))
    for k in (2, 3):
        x = L.Conv1D(8, 3, padding="same", name=f"c{k}")(x)
        x = act("relu", f"a{k}")(L.BatchNormalization(name=f"b{k}")(x))
        x = L.MaxPooling1D(3, name=f"p{k}")(x)
    return inp, act("relu", "a4")(L.Conv1D(16, 3, padding="same", name="c4")(x))


def squeeze_excite(act):
    """An EfficientNet block: swish, a depthwise conv, squeeze-and-excitation (global average
    pool kept as 1 x 1, two 1 x 1 convs, a sigmoid gate multiplied into the map it was computed
    from), a projection and a residual add."""
    keras = backend.keras()
    L = keras.layers
    inp = keras.Input((BANDS, FRAMES, 1))
    x = act("swish", "a1")(L.Conv2D(8, 3, padding="same", name="c1")(inp))
    x = act("swish", "a2")(L.DepthwiseConv2D(3, padding="same", name="dw")(x))
    s = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    s = act("relu", "a3")(L.Conv2D(4, 1, name="reduce")(s))
    s = act("sigmoid", "gate")(L.Conv2D(8, 1, name="expand")(s))
    x = L.Multiply(name="excite")([x, s])
    return inp, L.Add(name="res")([L.Conv2D(8, 1, name="proj")(x), x])


def gather_matmul(act):
    """Channels projected by a fixed matrix at every band and frame (``x @ W``: a batched
    matmul, as a recurrent layer's input projection), then bands picked by constant indices
    along a negative axis, one of them twice (a gather)."""
    keras, tf = backend.keras(), backend.tensorflow()
    L = keras.layers

    class Project(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 6), initializer="glorot_uniform", name="w")

        def call(self, x):
            return tf.linalg.matmul(x, self.w)                  # BatchMatMulV2

    class Pick(L.Layer):
        def call(self, x):
            return tf.gather(x, [1, 1, 5, 9, 2, 20], axis=-3)   # GatherV2

    inp = keras.Input((BANDS, FRAMES, 1))
    x = act("relu", "a1")(L.Conv2D(4, 3, padding="same", name="c1")(inp))
    x = Pick(name="picked")(Project(name="proj")(x))
    return inp, act("relu", "a2")(x)


ARCHITECTURES = {
    "temporal_conv1d": (temporal, "NTF", ["c1", "a1", "p1", "c2", "a2", "c3", "a3"]),
    "dilated": (dilated, "NFTC", ["c1", "a1", "p1", "c2", "a2"]),
    "gelu": (activations("gelu"), "NFTC", ["c1", "a1", "p1", "c2", "a2"]),
    "gelu_tanh": (activations("gelu_tanh"), "NFTC", ["c1", "a1", "p1", "c2", "a2"]),
    "swish": (activations("swish"), "NFTC", ["c1", "a1", "p1", "c2", "a2"]),
    "mish": (activations("mish"), "NFTC", ["c1", "a1", "p1", "c2", "a2"]),
    "hard_swish": (activations("hard_swish"), "NFTC", ["c1", "a1", "p1", "c2", "a2"]),
    "prelu": (activations("prelu"), "NFTC", ["c1", "a1", "p1", "c2", "a2"]),
    "layernorm": (normalised("layer"), "NFTC", ["c1", "n1", "a1", "c2", "a2"]),
    "groupnorm": (normalised("group"), "NFTC", ["c1", "n1", "a1", "c2", "a2"]),
    "grouped_conv": (grouped, "NFTC", ["c1", "a1", "c2", "a2", "p2"]),
    "crnn": (crnn, "NFTC", ["c1", "a1", "p1", "c2", "a2", "p2"]),
    "causal_conv1d": (causal, "NTF", ["c1", "a1", "c2", "a2"]),
    "erf_softsign": (elementwise, "NFTC", ["c1", "a1", "c2", "a2"]),
    "split_upsample": (branches, "NFTC", ["c1", "a1", "c2", "a2", "cat", "p2", "c3", "a3"]),
    "gather_matmul": (gather_matmul, "NFTC", ["c1", "a1", "proj", "picked", "a2"]),
    "squeeze_excite": (squeeze_excite, "NFTC", ["c1", "a1", "dw", "a2", "excite", "proj", "res"]),
    "sample_level": (sample_level, "NTC",
                     ["c1", "b1", "a1", "c2", "b2", "a2", "p2", "c3", "b3", "a3", "p3", "c4", "a4"]),
}


#: Architectures whose normalisation statistics the engine holds fixed: their reference, for
#: saliency too, is the tape with the statistics under stop_gradient.
FIXED_STATISTICS = ("layernorm", "groupnorm")


def _model(name, act):
    keras = backend.keras()
    keras.utils.set_random_seed(11)
    build, _, layers = ARCHITECTURES[name]
    inp, out = build(act)
    return keras.Model(inp, out), layers


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def arch(request, keras):
    name = request.param
    plain, layers = _model(name, _Act())
    rng = np.random.default_rng(7)
    for w in plain.weights:   # non-trivial normalisation and PReLU parameters
        if "gamma" in w.path or "beta" in w.path or "alpha" in w.path:
            w.assign(rng.uniform(0.5, 1.5, w.shape) if "gamma" in w.path
                     else 0.3 * rng.standard_normal(w.shape))
    axes = ARCHITECTURES[name][1]
    rep, shape = (REP, (FRAMES, BANDS)) if "F" in axes else (WAVE, (SAMPLES, 1))
    fm = mirdeconv.load_model(plain, representation=rep, input_axes=axes, layers=layers)
    X = rng.standard_normal(shape).astype(np.float32)
    track = TrackInput(frames=X, stft=np.zeros((BANDS, FRAMES), np.complex64),
                       audio=np.zeros(16 * FRAMES, np.float32), sr=8000, representation=rep)
    return name, plain, fm, track


def _reference(name, plain, fm, track, layer, method):
    """Tape gradients of each feature's map, seeded with itself, in the plain net (saliency)
    or in the ruled copy (guided, deconvnet)."""
    tf = backend.tensorflow()
    keras = backend.keras()
    net = plain
    if method != "saliency" or name in FIXED_STATISTICS:
        net, _ = _model(name, _Act(method))
        net.set_weights(plain.get_weights())
    sub = keras.Model(net.inputs, net.get_layer(layer).output)
    x = tf.constant(fm.to_input(track.frames[None]))
    a = sub(x, training=False).numpy()
    out = []
    for f in range(a.shape[-1]):
        seed = np.zeros_like(a)
        seed[..., f] = a[..., f]
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = sub(x, training=False)
        out.append(fm.from_input(tape.gradient(y, x, output_gradients=tf.constant(seed)).numpy())[0])
    return np.stack(out)


def test_layers_and_receptive_fields(arch):
    name, _, fm, _ = arch
    assert [li.name for li in fm.layers] == ARCHITECTURES[name][2]
    rf = {li.name: li.receptive_field[0] for li in fm.layers}
    expected = {"temporal_conv1d": {"c1": 5, "p1": 6, "c2": 14, "c3": 18},
                "dilated": {"c1": 5, "p1": 6, "c2": 6 + 2 * 3 * 2},
                "crnn": {"c1": 3, "p1": 4, "c2": 8, "p2": 10},
                "causal_conv1d": {"c1": 4, "c2": 6},
                "sample_level": {"c1": 3, "c2": 9, "p2": 15, "c3": 33, "p3": 51, "c4": 105},
                }.get(name, {"c1": 3})
    for layer, frames in expected.items():
        assert rf[layer] == frames, (layer, rf[layer], frames)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_layer_matches_gradient_tape(arch, method):
    name, plain, fm, track = arch
    for layer in ARCHITECTURES[name][2]:
        res = mirdeconv.deconvolve(fm, track=track, layer=layer, method=method)
        ref = _reference(name, plain, fm, track, layer, method)
        assert res.masks.shape == ref.shape, layer
        scale = np.abs(ref).max()
        if scale == 0:      # nothing reaches the input (e.g. deconvnet through negative maps)
            assert not res.masks.any(), layer
            continue
        np.testing.assert_allclose(res.masks, ref, rtol=0, atol=1e-5 * scale,
                                   err_msg=f"{name} / {layer} / {method}")


def test_a_sample_level_net_end_to_end(keras, tmp_path):
    """Saved as .keras, opened with nothing but its representation: the layout and the input
    length come from the file; a 1-s track goes through whole (the layers below a3 are
    convolutional along time) or in patches of 729 samples, and its auralisation is the
    deconvolved signal, as long as the track."""
    plain, _ = _model("sample_level", _Act())
    plain.save(tmp_path / "samplecnn.keras")
    fm = mirdeconv.load_model(tmp_path / "samplecnn.keras", representation=WAVE)
    assert fm.input_axes == "NTC" and fm.input_length == SAMPLES
    t = np.arange(WAVE.sr) / WAVE.sr
    y = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    aur = mirdeconv.auralise(fm, y, WAVE.sr, layer="a3", features="0-3", normalize="none")
    assert aur.audio.shape == (4, len(y)) and aur.sr == WAVE.sr
    np.testing.assert_array_equal(aur.audio, aur.deconvolution.masks[:, :, 0])
    assert aur.deconvolution.mode == "whole" and np.abs(aur.audio).max() > 0
    patched = mirdeconv.deconvolve(fm, y, WAVE.sr, layer="a3", features="0-3", mode="patches")
    assert patched.mode == "patches" and patched.masks.shape == (4, len(y), 1)
    inner = slice(SAMPLES, len(y) - SAMPLES)      # away from the track's ends
    corr = np.corrcoef(patched.masks[:, inner].ravel(), aur.audio[:, inner].ravel())[0, 1]
    assert corr > 0.9, corr


def test_a_sample_level_net_analysed(keras):
    """The analysis describes a waveform model's features from their signals: finite energies,
    no warnings, and ``energy_ratio`` is the cover of the track's magnitude spectrogram by the
    feature's, computed here independently with librosa from the auralisations."""
    import warnings

    import librosa

    plain, _ = _model("sample_level", _Act())
    fm = mirdeconv.load_model(plain, representation=WAVE, input_axes="NTC")
    t = np.arange(2 * WAVE.sr) / WAVE.sr
    y = (0.5 * np.where(t < 1, np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1500 * t))
         ).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = mirdeconv.analyse(fm, [("tones", y, WAVE.sr)], layers=["a1"], features="0-7")
    df = res.per_feature.set_index("feature")
    live = ~df["dead"]
    assert live.sum() >= 4 and np.isfinite(df["output_energy"]).all()
    aur = mirdeconv.auralise(fm, y, WAVE.sr, layer="a1", features="0-7", normalize="none")
    grid = {"n_fft": WAVE.n_fft, "hop_length": WAVE.hop_length}
    X = np.abs(librosa.stft(y, **grid))
    for f in np.flatnonzero(live.to_numpy()):
        S = np.abs(librosa.stft(aur.audio[f], **grid))
        cover = (S * X).sum() ** 2 / ((S ** 2).sum() * (X ** 2).sum())
        assert 0.01 < cover <= 1
        assert df.loc[f, "energy_ratio"] == pytest.approx(cover, rel=1e-3), f
        assert "passes 0 %" not in df.loc[f, "label"]


@pytest.mark.slow
def test_efficientnet_b0(keras):
    """keras.applications.EfficientNetB0 (random weights; Discogs-EffNet is one), on mel
    frames: a mid-network activation and its squeeze-and-excitation output deconvolve with
    every method, saliency equal to GradientTape seeded with the feature's own map."""
    tf = backend.tensorflow()
    keras.utils.set_random_seed(5)
    net = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                             input_shape=(128, 96, 1))
    rep = mirdeconv.representations.musicnn()
    fm = mirdeconv.load_model(net, representation=rep, input_axes="NTFC")
    names = {li.name for li in fm.layers}
    assert {"block4a_activation", "block4a_se_excite", "block6d_add"} <= names
    X = np.random.default_rng(3).standard_normal((128, 96)).astype(np.float32)
    track = TrackInput(frames=X, stft=np.zeros((257, 128), np.complex64),
                       audio=np.zeros(256 * 128, np.float32), sr=16000, representation=rep)
    x = tf.constant(fm.to_input(X[None]))
    for layer in ("block4a_activation", "block4a_se_excite"):
        sub = keras.Model(net.inputs, net.get_layer(layer).output)
        a = sub(x, training=False).numpy()
        feats = [0, 17, int(np.abs(a).reshape(-1, a.shape[-1]).max(0).argmax())]
        res = {m: mirdeconv.deconvolve(fm, track=track, layer=layer, features=feats, method=m)
               for m in METHODS}
        for j, f in enumerate(feats):
            seed = np.zeros_like(a)
            seed[..., f] = a[..., f]
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = sub(x, training=False)
            ref = fm.from_input(tape.gradient(y, x, output_gradients=tf.constant(seed)).numpy())[0]
            assert np.abs(ref).max() > 0
            np.testing.assert_allclose(res["saliency"].masks[j], ref, rtol=0,
                                       atol=1e-4 * np.abs(ref).max(), err_msg=f"{layer} / {f}")
        for m in ("deconvnet", "guided"):
            assert np.isfinite(res[m].masks).all() and np.abs(res[m].masks).max() > 0, (layer, m)
        d, sal = res["deconvnet"].masks, res["saliency"].masks
        assert np.abs(d / np.abs(d).max() - sal / np.abs(sal).max()).max() > 0.1   # a rule of its own
