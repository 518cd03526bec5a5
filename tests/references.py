"""Independent references for the engine: tf.gradients through a model's own frozen graph,
the ReLU's gradient overridden by a method's rule (saliency: none)."""

from __future__ import annotations

import numpy as np

import mirdeconv
from mirdeconv import backend
from mirdeconv.engine import model_input

_RULES = {"deconvnet": "MirdeconvTestDeconvRelu", "guided": "MirdeconvTestGuidedRelu"}


def _register() -> None:
    tf = backend.tensorflow()
    from tensorflow.python.framework import ops

    if ops.gradient_registry._registry.get(_RULES["deconvnet"]) is None:
        tf.RegisterGradient(_RULES["deconvnet"])(lambda op, g: tf.nn.relu(g))
        tf.RegisterGradient(_RULES["guided"])(
            lambda op, g: tf.nn.relu(g) * tf.cast(op.outputs[0] > 0, g.dtype))


def graph_gradients(model, x: np.ndarray, layer, method: str, features: list[int]) -> np.ndarray:
    """Per feature k: d(layer's map k, seeded with its own activation)/d(input).

    Parameters
    ----------
    x : np.ndarray, shape (1, *input)
        One model input.

    Returns
    -------
    np.ndarray, shape (len(features), n_frames, n_bands)
    """
    tf = backend.tensorflow()
    _register()
    gd = model.graph.subgraph_def([layer.tensor])
    override = {} if method == "saliency" else {"Relu": _RULES[method]}

    def forward(inp):
        return tf.graph_util.import_graph_def(gd, input_map={model.input_tensor: inp},
                                              return_elements=[layer.tensor], name="r")[0]

    def backward(inp, seed):
        with tf.compat.v1.get_default_graph().gradient_override_map(override):
            y = forward(inp)
        return tf.gradients(y, inp, grad_ys=seed)[0]

    spec = tf.TensorSpec(x.shape, tf.float32)
    act = tf.compat.v1.wrap_function(forward, [spec])(tf.constant(x)).numpy()
    grad = tf.compat.v1.wrap_function(backward, [spec, tf.TensorSpec(act.shape, tf.float32)])
    out = []
    for k in features:
        seed = np.zeros_like(act)
        index = [slice(None)] * act.ndim
        index[layer.feature_axis] = k
        seed[tuple(index)] = act[tuple(index)]
        out.append(model.from_input(grad(tf.constant(x), tf.constant(seed)).numpy())[0])
    return np.stack(out)


def one_patch(model, seed: int = 3):
    """A track of random frames exactly one input patch long, and that patch as the model
    takes it (standardised when the model standardises).

    Returns
    -------
    track : mirdeconv.representations.TrackInput
    x : np.ndarray, shape (1, *input)
    """
    rep = model.representation
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((model.input_length, rep.n_bands)).astype(np.float32)
    n_bins = 1 + rep.n_fft // 2
    track = mirdeconv.representations.TrackInput(
        frames=frames, stft=np.zeros((n_bins, model.input_length), np.complex64),
        audio=np.zeros(rep.hop_length * (model.input_length - 1), np.float32), sr=rep.sr,
        representation=rep)
    x, _ = model_input(model, frames, whole=False)
    return track, x


def assert_every_layer_matches(model, method: str) -> None:
    """Every layer of ``model``, its first and last feature, against :func:`graph_gradients`
    to 1e-5 of the reference's largest value."""
    track, x = one_patch(model)
    for layer in model.layers:
        feats = [0, layer.n_features - 1]
        res = mirdeconv.deconvolve(model, track=track, layer=layer.name, features=feats,
                                   method=method)
        ref = graph_gradients(model, x, layer, method, feats)
        scale = np.abs(ref).max()
        if scale == 0:
            assert not res.masks.any(), layer.name
            continue
        np.testing.assert_allclose(res.masks, ref, rtol=0, atol=1e-5 * scale,
                                   err_msg=f"{model.name}: {layer.name} / {method}")


def saliency_of_unit(net, model, res, unit: int) -> np.ndarray:
    """The plain gradient of a Keras net's output channel ``unit`` (seeded with its own
    activation, as the engine's ``map`` target) with respect to the model input of ``res``'s
    track, in the model input's domain (n_frames, n_bands): GradientTape, not the engine."""
    tf = backend.tensorflow()
    x = tf.constant(model.to_input(res.track.frames[None]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = net(x)[..., unit]
        obj = tf.reduce_sum(out * tf.stop_gradient(out))
    return model.from_input(tape.gradient(obj, x).numpy())[0]
