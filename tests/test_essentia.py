"""Essentia models: the zoo (converted from the musicnn wheel), the official model, the
Essentia runtime against the engine's graph, layer naming, JSON variants, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mirdeconv
from mirdeconv import backend, zoo
from mirdeconv.cli import main
from mirdeconv.engine import run_graph
from mirdeconv.errors import ModelLoadError

from .conftest import shared_file, tone_track

pytestmark = pytest.mark.slow

MUSICNN_MSD_TAGS_HEAD = ["rock", "pop", "alternative", "indie", "electronic"]


def test_zoo_graphs_are_inference_only_essentia_format(zoo_cache):
    _, paths = zoo_cache
    tf = backend.tensorflow()
    for name, pb in paths.items():
        gd = tf.compat.v1.GraphDef()
        gd.ParseFromString(pb.read_bytes())
        ops = {n.op for n in gd.node}
        assert not ops & {"Switch", "Merge", "RandomUniform", "VariableV2", "Assign"}, name
        ph = [n for n in gd.node if n.op == "Placeholder"]
        assert [n.name for n in ph] == ["model/Placeholder"]
        assert [d.size for d in ph[0].attr["shape"].shape.dim] == [-1, 187, 96]
        meta = json.loads(pb.with_suffix(".json").read_text())
        assert {"name", "type", "classes", "schema", "inference", "citation"} <= set(meta)
        assert meta["inference"] == {"sample_rate": 16000, "algorithm": "TensorflowPredictMusiCNN"}
        purposes = [o["output_purpose"] for o in meta["schema"]["outputs"]]
        assert purposes == ["predictions", "", "embeddings"]
        assert len(meta["classes"]) == 50 and "ISC licence" in meta["licence"]
    assert json.loads(paths["msd-vgg"].with_suffix(".json").read_text())["classes"][:5] == \
        MUSICNN_MSD_TAGS_HEAD


def _essentia_patches(y):
    """Essentia's own input frames (centred, as its predictor frames them), cut into its
    patches (187 frames, hop 93, from frame 0)."""
    es = backend.essentia_standard()
    inp = es.TensorflowInputMusiCNN()
    frames = np.array([inp(f) for f in es.FrameGenerator(y, frameSize=512, hopSize=256,
                                                           startFromZero=False)])
    starts = range(0, len(frames) - 187 + 1, 93)
    return np.stack([frames[s:s + 187] for s in starts]).astype(np.float32)


@pytest.mark.parametrize("name", ["mtt-musicnn", "msd-vgg"])
def test_essentia_runtime_and_engine_graph_agree(zoo_cache, name):
    es = backend.essentia_standard()
    model = mirdeconv.load_model(name)
    y = tone_track(16000, 8.0)
    patches = _essentia_patches(y)
    pool = backend.essentia().Pool()
    pool.set("model/Placeholder", patches[:, None])      # Essentia's [batch, 1, 187, 96]
    predict = es.TensorflowPredict(graphFilename=str(model.graph_file),
                                   inputs=["model/Placeholder"], outputs=["model/Sigmoid"],
                                   squeeze=True)
    theirs = np.asarray(predict(pool)["model/Sigmoid"]).reshape(len(patches), -1)
    ours = run_graph(model, patches)
    assert ours.shape == theirs.shape == (len(patches), 50)
    assert np.abs(ours - theirs).max() <= 1e-5
    # and the high-level Essentia algorithm runs the file unchanged
    act, labels = model.predict(y, 16000)
    assert act.shape == (len(patches), 50) and labels == model.labels
    assert np.abs(act - theirs).max() <= 1e-5


def test_layers_named_for_people(zoo_cache):
    m = mirdeconv.load_model("msd-musicnn")
    got = {li.name: (li.n_features, li.axes, li.receptive_field) for li in m.layers}
    assert list(got) == ["timbral_7x38", "timbral_7x67", "temporal_128", "temporal_64",
                         "temporal_32", "midend_1", "midend_2", "midend_3"]
    assert got["timbral_7x38"] == (204, "NTFC", (7, 38))
    assert got["temporal_128"] == (51, "NTFC", (128, 1))
    assert got["midend_3"] == (64, "NT1C", (146, None))
    v = mirdeconv.load_model("mtt-vgg")
    assert [(li.name, li.n_features) for li in v.layers] == [(f"{k}CNN", 128) for k in range(1, 6)]
    assert [li.receptive_field[0] for li in v.layers] == [3, 10, 20, 40, 80]
    with pytest.raises(mirdeconv.errors.UnknownLayerError, match="1CNN, 2CNN"):
        v.layer("dense")


def test_zoo_layers_deconvolve(zoo_cache):
    m = mirdeconv.load_model("mtt-vgg")
    y = tone_track(16000, 4.0)
    res = mirdeconv.deconvolve(m, y, 16000, layer="3CNN", features="0-7")
    assert res.mode == "whole" and res.masks.shape == (8, 251, 96)
    assert np.isfinite(res.masks).all() and np.abs(res.masks[~res.dead]).max() > 0


def test_official_essentia_model_as_bare_pb():
    path = shared_file("models/essentia/genre_dortmund_musicnn_msd.pb")
    m = mirdeconv.load_model(path)                        # no JSON beside it
    assert m.input_tensor == "model/Placeholder:0" and m.output_tensor == "model/Sigmoid:0"
    assert m.algorithm == "TensorflowPredictMusiCNN" and m.input_length == 187
    assert [li.name for li in m.layers][:2] == ["timbral_7x38", "timbral_7x67"]
    y = tone_track(16000, 8.0)
    patches = _essentia_patches(y)
    act, _ = m.predict(y, 16000)
    assert act.shape == (len(patches), 9)
    assert np.abs(run_graph(m, patches) - act).max() <= 1e-5
    res = mirdeconv.deconvolve(m, y, 16000, layer="temporal_64", features="0-3")
    assert res.masks.shape == (4, 501, 96) and np.isfinite(res.masks).all()


def test_json_variants_and_unsupported_algorithm(zoo_cache, tmp_path):
    _, paths = zoo_cache
    pb = tmp_path / "old.pb"
    shutil.copy(paths["mtt-musicnn"], pb)
    meta = json.loads(shared_file("models/essentia/msd-musicnn-1.example.json").read_text())
    # an older JSON: no inference block, no output_purpose
    old = {k: v for k, v in meta.items() if k != "inference"}
    for o in old["schema"]["outputs"]:
        o.pop("output_purpose", None)
    pb.with_suffix(".json").write_text(json.dumps(old))
    m = mirdeconv.load_model(pb)
    assert m.algorithm == "TensorflowPredictMusiCNN" and m.labels[:5] == MUSICNN_MSD_TAGS_HEAD
    assert m.output_tensor == "model/Sigmoid:0"
    meta["inference"]["algorithm"] = "TensorflowPredictFSDSINet"
    pb.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="'TensorflowPredictFSDSINet' is not supported yet"):
        mirdeconv.load_model(pb)
    meta["inference"]["algorithm"] = "TensorflowPredictCREPE"      # a claim the graph belies
    pb.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="input has 96 channels on its last axis"):
        mirdeconv.load_model(pb)


def test_zoo_download_failures_leave_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRDECONV_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / zoo.WHEEL
    bad.write_bytes(b"not the wheel")
    monkeypatch.setenv("MIRDECONV_MUSICNN_WHEEL", str(bad))
    with pytest.raises(zoo.ZooError, match="sha256 .* does not match"):
        zoo.fetch("mtt-vgg")
    monkeypatch.setenv("MIRDECONV_MUSICNN_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(zoo.ZooError, match="does not exist"):
        zoo.fetch("mtt-vgg")
    assert not list((tmp_path / "cache").rglob("*.pb"))
    assert not list((tmp_path / "cache").rglob("*.json"))
    with pytest.raises(ModelLoadError, match="unknown zoo model 'nope'"):
        zoo.fetch("nope")


def test_cli_zoo_layers_deconvolve_predict(zoo_cache, tmp_path, capsys):
    import soundfile as sf

    sf.write(tmp_path / "song.ogg", tone_track(22050, 5.0), 22050)
    assert main(["zoo", "list"]) == 0
    assert "mtt-musicnn" in capsys.readouterr().out
    assert main(["zoo", "fetch", "mtt-vgg"]) == 0
    assert "mtt-vgg.pb" in capsys.readouterr().out
    assert main(["layers", "mtt-musicnn"]) == 0
    assert "timbral_7x38" in capsys.readouterr().out
    assert main(["deconvolve", "mtt-vgg", str(tmp_path / "song.ogg"), "--layer", "3CNN",
                 "--features", "0-1", "--out", str(tmp_path / "o"), "--no-png"]) == 0
    assert np.load(tmp_path / "o" / "song" / "3CNN" / "f001.npy").shape == (313, 96)
    capsys.readouterr()
    assert main(["predict", "mtt-musicnn", str(tmp_path / "song.ogg"), "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "through Essentia TensorflowPredictMusiCNN" in out[0] and len(out) == 4
    scores = [float(line.split()[-1]) for line in out[1:]]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1


def test_zoo_registry_failure_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRDECONV_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MIRDECONV_MUSICNN_WHEEL", raising=False)
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                       "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_FIND_LINKS": "",
                       "PIP_EXTRA_INDEX_URL": ""}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(zoo.ZooError, match="could not download musicnn==0.1.0.*"
                                           "MIRDECONV_MUSICNN_WHEEL"):
        zoo.fetch("msd-vgg")
    assert not list((tmp_path / "cache").rglob("*.pb"))


def test_two_processes_convert_once(zoo_cache, tmp_path):
    """Two processes fetch the same model into an empty cache at once: the lock lets one
    convert, the other finds the finished files; both get the same, valid model."""
    wheel = tmp_path / zoo.WHEEL
    zoo.get_wheel(tmp_path)  # from the registry, checksummed
    env = dict(os.environ, MIRDECONV_CACHE=str(tmp_path / "cache"),
               MIRDECONV_MUSICNN_WHEEL=str(wheel), TF_CPP_MIN_LOG_LEVEL="3")
    code = ("import time, mirdeconv.zoo as z; t=time.time(); p=z.fetch('mtt-vgg'); "
            "print(p, p.stat().st_mtime_ns)")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    lines = {o[0].strip() for o in outs}
    assert len(lines) == 1          # same file, same modification time: converted once
    pb = tmp_path / "cache" / "zoo" / "mtt-vgg.pb"
    assert pb.read_bytes() == zoo_cache[1]["mtt-vgg"].read_bytes()
