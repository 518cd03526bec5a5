"""The engine on a real frozen Essentia graph (musicnn architecture, ../shared/models).

Reference: tf.gradients on the imported GraphDef, with TensorFlow's own ReLU gradient
overridden by the method's rule (gradient_override_map), seeded with each feature's map.
"""

from __future__ import annotations

import numpy as np
import pytest

import mirdeconv
from mirdeconv import backend
from mirdeconv.representations import musicnn

from .conftest import shared_file, tone_track

pytestmark = pytest.mark.slow

_RULE_NAMES = {"deconvnet": "MirdeconvTestDeconvRelu", "guided": "MirdeconvTestGuidedRelu"}


@pytest.fixture(scope="module")
def essentia_model():
    path = shared_file("models/essentia/genre_dortmund_musicnn_msd.pb")
    return mirdeconv.load_model(path, representation=musicnn(), input="model/Placeholder",
                                input_axes="NTF", name="dortmund")


def _register_rules(tf):
    from tensorflow.python.framework import ops

    if ops.gradient_registry._registry.get(_RULE_NAMES["deconvnet"]) is None:
        tf.RegisterGradient(_RULE_NAMES["deconvnet"])(lambda op, g: tf.nn.relu(g))
        tf.RegisterGradient(_RULE_NAMES["guided"])(
            lambda op, g: tf.nn.relu(g) * tf.cast(op.outputs[0] > 0, g.dtype))


def reference(fm, x, layer, method, features):
    tf = backend.tensorflow()
    _register_rules(tf)
    gd = fm.graph.subgraph_def([layer])
    override = {} if method == "saliency" else {"Relu": _RULE_NAMES[method]}

    def forward(inp):
        return tf.graph_util.import_graph_def(gd, input_map={fm.input_tensor: inp},
                                              return_elements=[layer], name="r")[0]

    def backward(inp, seed):
        g = tf.compat.v1.get_default_graph()
        with g.gradient_override_map(override):
            y = forward(inp)
        return tf.gradients(y, inp, grad_ys=seed)[0]

    spec = tf.TensorSpec(x.shape, tf.float32)
    act = tf.compat.v1.wrap_function(forward, [spec])(tf.constant(x)).numpy()
    grad = tf.compat.v1.wrap_function(backward, [spec, tf.TensorSpec(act.shape, tf.float32)])
    out = []
    for k in features:
        seed = np.zeros_like(act)
        seed[..., k] = act[..., k]
        out.append(grad(tf.constant(x), tf.constant(seed)).numpy()[0])
    return np.stack(out)


def test_layers_of_the_essentia_graph(essentia_model):
    layers = {li.name: li for li in essentia_model.layers}
    assert essentia_model.input_length == 187
    assert layers["timbral_7x38"].n_features == 204
    assert layers["timbral_7x38"].receptive_field == (7, 38)
    assert layers["temporal_128"].receptive_field == (128, 1)
    assert layers["midend_2"].axes == "NT1C"


@pytest.mark.parametrize("method", ["saliency", "guided", "deconvnet"])
@pytest.mark.parametrize("layer", ["timbral_7x38", "temporal_64", "midend_2"])
def test_engine_matches_tf_gradients_on_essentia_graph(essentia_model, method, layer):
    fm = essentia_model
    y = tone_track(sr=16000, seconds=186 * 256 / 16000)  # exactly one 187-frame patch
    analysis = fm.representation.prepare(y, 16000)
    feats = analysis.frames
    assert feats.shape == (187, 96)
    res = mirdeconv.deconvolve(fm, track=analysis, layer=layer, method=method,
                               features="0-15", mode="patches")
    assert not res.masks[res.dead].any()
    alive = np.flatnonzero(~res.dead)
    features = [int(k) for k in alive[:: max(1, len(alive) // 4)][:4]]
    assert len(features) >= 2
    ref = reference(fm, fm.to_input(feats[None]), fm.layer(layer).tensor, method, features)
    got = res.masks[[res.features.index(k) for k in features]]
    scale = np.abs(ref).max()
    if scale == 0:  # e.g. guided: a batch norm after the ReLU made every seed negative
        assert not got.any()
    np.testing.assert_allclose(got, ref, atol=2e-5 * scale)
