"""ONNX graphs made ready for the converter, on small graphs written with ``onnx.helper``:
GRUs written out as their equations (both layouts, both ``linear_before_reset`` readings, an
initial state or none, ``Y`` and ``Y_h``) held to ONNX Runtime on the graph as it was; a
batch fixed in a reshape freed, a constant's own reshape left alone, a batch fixed elsewhere
refused with how to export the file; layer names from module paths; a TorchScript file opened
only with ``allow_unsafe``."""

from __future__ import annotations

import numpy as np
import pytest

import mirdeconv
from mirdeconv import backend
from mirdeconv.errors import ModelLoadError, UnsafeModelError
from mirdeconv.representations import LinearSpectrogram

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, numpy_helper = onnx.helper, onnx.numpy_helper

BANDS, FRAMES, MAPS, HIDDEN = 8, 10, 4, 5
REP = LinearSpectrogram(sr=8000, n_fft=2 * (BANDS - 1), hop_length=16)
RNG = np.random.default_rng(4)


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def conv_front(batch):
    """(batch, 1, BANDS, FRAMES) -> conv 3x3 -> ReLU -> mean over bands: (batch, MAPS, FRAMES)."""
    nodes = [
        helper.make_node("Conv", ["mel", "w", "b"], ["conv"], name="/layer1/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], name="/layer1/relu/Relu"),
        helper.make_node("ReduceMean", ["relu", "axes2"], ["seq"], name="/layer1/ReduceMean", keepdims=0),
    ]
    inits = [_init("w", RNG.standard_normal((MAPS, 1, 3, 3)).astype(np.float32)),
             _init("b", 0.1 * RNG.standard_normal(MAPS).astype(np.float32)),
             _init("axes2", np.array([2], np.int64))]
    inp = helper.make_tensor_value_info("mel", onnx.TensorProto.FLOAT, [batch, 1, BANDS, FRAMES])
    return nodes, inits, inp


def model_of(nodes, inits, inp, outputs, opset=18):
    graph = helper.make_graph(nodes, "g", [inp], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def gru_model(layout, lbr, with_h0, out="Y", batch="N"):
    nodes, inits, inp = conv_front(batch)
    H = HIDDEN
    if layout == 0:   # (seq, batch, maps)
        nodes.append(helper.make_node("Transpose", ["seq"], ["x"], perm=[2, 0, 1]))
    else:             # (batch, seq, maps)
        nodes.append(helper.make_node("Transpose", ["seq"], ["x"], perm=[0, 2, 1]))
    gru_in = ["x", "W", "R", "B", ""]
    inits += [_init("W", 0.5 * RNG.standard_normal((1, 3 * H, MAPS)).astype(np.float32)),
              _init("R", 0.5 * RNG.standard_normal((1, 3 * H, H)).astype(np.float32)),
              _init("B", 0.3 * RNG.standard_normal((1, 6 * H)).astype(np.float32))]
    if with_h0:       # a non-zero initial state, the same for every item of the batch
        h0 = 0.5 * RNG.standard_normal((1, 1, H)).astype(np.float32)
        inits.append(_init("h0_one", h0 if layout == 0 else h0.transpose(1, 0, 2)))
        nodes += [helper.make_node("Shape", ["mel"], ["shape"], start=0, end=1),
                  helper.make_node("Concat", ["one", "shape", "hid"] if layout == 0 else
                                   ["shape", "one", "hid"], ["h0_shape"], axis=0),
                  helper.make_node("Expand", ["h0_one", "h0_shape"], ["h0"])]
        inits += [_init("one", np.array([1], np.int64)), _init("hid", np.array([H], np.int64))]
        gru_in.append("h0")
    nodes.append(helper.make_node("GRU", gru_in, ["Y", "Y_h"], name="gru", hidden_size=H,
                                  layout=layout, linear_before_reset=lbr))
    if out == "Y":    # the direction axis squeezed, then the mean over time: (batch, H)
        nodes += [helper.make_node("Squeeze", ["Y", "dir_axis"], ["ys"]),
                  helper.make_node("ReduceMean", ["ys", "time_axis"], ["pred"], keepdims=0)]
        inits += [_init("dir_axis", np.array([2 if layout else 1], np.int64)),
                  _init("time_axis", np.array([1 if layout else 0], np.int64))]
    else:             # the last state: (batch, H)
        nodes.append(helper.make_node("ReduceMean", ["Y_h", "axes_h"], ["pred"], keepdims=0))
        inits.append(_init("axes_h", np.array([0 if layout == 0 else 1], np.int64)))
    out_info = helper.make_tensor_value_info("pred", onnx.TensorProto.FLOAT, [None, None])
    return model_of(nodes, inits, inp, [out_info])


def runtime(model, x):
    """The file's own output: ONNX Runtime, or ONNX's reference evaluator where ONNX Runtime
    lacks the operation (a batch-first GRU)."""
    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"mel": x})[0]
    except Exception:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, {"mel": x})[0]


def converted(model_proto, x):
    """The opened model's predictions on ``x`` (batch, 1, bands, frames)."""
    from mirdeconv.engine import run_graph

    m = mirdeconv.load_model(model_proto, representation=REP, input_axes="NCFT")
    return m, run_graph(m, np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))))


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("with_h0,out", [(False, "Y"), (True, "Y"), (True, "Y_h")])
def test_a_gru_written_out_equals_onnx_runtime(layout, lbr, with_h0, out):
    """The GRU as the file has it, in ONNX Runtime, against its equations in the converted
    graph, on a batch of three."""
    model = gru_model(layout, lbr, with_h0, out)
    x = RNG.standard_normal((3, 1, BANDS, FRAMES)).astype(np.float32)
    m, got = converted(model, x)
    ref = runtime(model, x)
    assert got.shape == ref.shape == (3, HIDDEN)
    assert np.abs(got - ref).max() <= 1e-5 * max(np.abs(ref).max(), 1)
    assert "GRU" not in {n.op for n in m.graph.graph_def.node}
    assert [li.name for li in m.layers] == ["layer1.conv", "layer1.relu", "layer1"]


def test_a_batch_fixed_in_a_reshape_is_freed_and_a_constants_reshape_is_not():
    """Exported with a batch of one: the flatten (a reshape to [1, -1]) takes any batch; a
    per-channel scale reshaped to [1, MAPS, 1, 1] (a constant's own reshape) is left as it is."""
    nodes, inits, inp = conv_front(1)
    nodes[2:] = [
        helper.make_node("Reshape", ["scale", "scale_shape"], ["scale4"]),
        helper.make_node("Mul", ["relu", "scale4"], ["scaled"]),
        helper.make_node("Reshape", ["scaled", "flat"], ["pred"]),
    ]
    inits += [_init("scale", RNG.uniform(0.5, 2, MAPS).astype(np.float32)),
              _init("scale_shape", np.array([1, MAPS, 1, 1], np.int64)),
              _init("flat", np.array([1, MAPS * BANDS * FRAMES], np.int64))]
    out = helper.make_tensor_value_info("pred", onnx.TensorProto.FLOAT, [None, None])
    model = model_of(nodes, inits, inp, [out])
    x = RNG.standard_normal((2, 1, BANDS, FRAMES)).astype(np.float32)
    _, got = converted(model, x)
    ref = np.concatenate([runtime(model, x[k:k + 1]) for k in range(2)])
    assert got.shape == ref.shape == (2, MAPS * BANDS * FRAMES)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_a_batch_fixed_elsewhere_is_refused_with_how_to_export():
    """(1, MAPS, FRAMES) transposed to (FRAMES, 1, MAPS) and reshaped to [FRAMES, 1, MAPS]: the
    batch is fixed in the middle; the converted graph cannot take a batch of two."""
    nodes, inits, inp = conv_front(1)
    nodes += [helper.make_node("Transpose", ["seq"], ["tseq"], perm=[2, 0, 1]),
              helper.make_node("Reshape", ["tseq", "shape3"], ["pred"])]
    inits.append(_init("shape3", np.array([FRAMES, 1, MAPS], np.int64)))
    model = model_of(nodes, inits, inp,
                     [helper.make_tensor_value_info("pred", onnx.TensorProto.FLOAT, [None, None, None])])
    with pytest.raises(ModelLoadError, match=r"does not take a batch of two.*export it with a free "
                                             r"batch axis"):
        mirdeconv.load_model(model, representation=REP, input_axes="NCFT")


def test_layer_names_follow_module_paths():
    """A module's output takes its path; other operations in it their own name; operations
    outside any module their name, numbered in order; one call exported as several
    operations offers only its last; a bias add is no layer."""
    from mirdeconv.adapters.onnx_prep import layer_names

    def node(op, name, scopes, out, inputs=("a", "b")):
        n = helper.make_node(op, list(inputs), [out], name=name)
        n.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(scopes))
        return n

    nodes = [
        node("Conv", "c", ["", "block", "block.conv", "conv2d"], "t0"),
        node("Sigmoid", "s", ["", "silu"], "t1", ("t0",)),
        node("Mul", "m", ["", "silu"], "t2", ("t0", "t1")),
        node("Relu", "r", ["", "se", "relu"], "t3", ("t2",)),
        node("Mul", "g", ["", "se", "mul_7"], "t4", ("t2", "t3")),
        node("Add", "a1", ["", "add_50"], "t5", ("t4", "t0")),
        node("Add", "a2", ["", "add_51"], "t6", ("t5", "bias")),
        node("Add", "a3", ["", "add_52"], "t7", ("t5", "t4")),
    ]
    graph = helper.make_graph(nodes, "g", [], [], [_init("bias", np.zeros(3, np.float32))])
    names = layer_names(helper.make_model(graph), {f"t{k}": 4 for k in range(8)})
    assert names == {"block.conv": "t0", "silu": "t2", "se.relu": "t3", "se": "t4", "add": "t5",
                     "add_1": "t7"}


def test_a_torchscript_file_needs_allow_unsafe(tmp_path):
    torch = pytest.importorskip("torch")
    backend.torch()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, MAPS, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2))
    path = tmp_path / "net.pt"
    torch.jit.script(net).save(str(path))
    kw = {"representation": REP, "input_axes": "NCFT", "input_length": FRAMES}
    with pytest.raises(UnsafeModelError, match="net.pt is a TorchScript file: it holds code"):
        mirdeconv.load_model(path, **kw)
    m = mirdeconv.load_model(path, allow_unsafe=True, **kw)
    assert m.family == "pytorch" and [li.name for li in m.layers] == ["0", "1", "2"]   # Sequential's
