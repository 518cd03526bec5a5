"""Every official Essentia graph in ../shared/models/essentia/: it loads, lists its layers
with their receptive fields, and every layer deconvolves with every method as tf.gradients
through the graph itself does (saliency: the plain gradient; guided and deconvnet: the
ReLU's gradient overridden by the method's rule)."""

from __future__ import annotations

import pytest

import mirdeconv

from .conftest import shared_file
from .references import assert_every_layer_matches

#: graph -> (options, algorithm, input layout, patch length, layers' receptive fields
#: (time, frequency) for some layers, number of layers).
GRAPHS = {
    "genre_dortmund_musicnn_msd.pb": (
        {}, "TensorflowPredictMusiCNN", "NTF", 187,
        {"timbral_7x38": (7, 38), "temporal_128": (128, 1), "midend_1": (134, None),
         "midend_3": (146, None)}, 8),
    "small_vggish_init.pb": (
        {}, "TensorflowPredictVGGish", "NTF", 96,
        {"model/vggish/conv1/Relu": (3, 3), "model/vggish/pool1/MaxPool": (4, 4),
         "model/vggish/conv2/Relu": (8, 8), "model/vggish/pool4/MaxPool": (70, 70)}, 16),
    "deeptemp_k16.pb": (
        {"output": "output"}, "TensorflowPredictTempoCNN", "NFTC", 256,
        {"convolution": (5, 1), "convolution_1": (7, 1), "MaxPool": (8, 2),
         "convolution_2": (16, 2)}, 32),
    "crepe-tiny-1.pb": (
        {}, "TensorflowPredictCREPE", "NT", 1024,
        {"model/conv1/Relu": (512, None), "model/conv1-maxpool/MaxPool": (516, None),
         "model/conv2/Relu": (1020, None), "model/conv3/Relu": (1024, None)}, 24),
}


@pytest.fixture(scope="module", params=sorted(GRAPHS))
def graph(request):
    return request.param, mirdeconv.load_model(shared_file(f"models/essentia/{request.param}"),
                                               **GRAPHS[request.param][0])


def test_loads_with_its_layers(graph):
    name, model = graph
    _, algorithm, axes, length, fields, n_layers = GRAPHS[name]
    assert (model.algorithm, model.input_axes, model.input_length) == (algorithm, axes, length)
    layers = {li.name: li for li in model.layers}
    for layer, rf in fields.items():
        assert layers[layer].receptive_field == rf, layer
    if n_layers is not None:
        assert len(layers) == n_layers
    assert all(li.receptive_field[0] <= length for li in layers.values())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["saliency", "guided", "deconvnet"])
def test_every_layer_matches_tf_gradients(graph, method):
    assert_every_layer_matches(graph[1], method)
