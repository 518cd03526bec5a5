"""Sanity checks: the re-initialised model against Keras, the cascade's bookkeeping against
explanations computed here, the similarity measures on maps with known answers, and the
selectivity of auralisations on a planted net whose answer is known by construction."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import mirdeconv
from mirdeconv.adapters.keras import from_keras
from mirdeconv.cli import main
from mirdeconv.representations import MelSpectrogram, choi2016_stft
from mirdeconv.sanity import (
    PASS_BELOW,
    Cascade,
    deconvolution_cascade,
    explanation_cascade,
    load_report,
    parameter_layers,
    randomised,
    sanity_check,
    save_report,
    selectivity,
)
from mirdeconv.sanity.report import cached_sanity_check, report_folder
from mirdeconv.sanity.similarity import rank_correlation, ssim

from .conftest import shared_file
from .test_explain import BANDS, TAGS, build

SR = 8000


@pytest.fixture(scope="module")
def tagger(keras):
    keras.utils.set_random_seed(15)
    L = keras.layers
    net = build(keras, lambda kind, name: {"relu": L.ReLU, "elu": L.ELU}[kind](name=name))
    rep = MelSpectrogram(sr=SR, n_fft=256, hop_length=128, n_mels=BANDS, compression="log10")
    model = from_keras(net, rep, labels=TAGS, layers=["c1", "c2"])
    y = np.random.default_rng(2).standard_normal(SR * 2).astype(np.float32) * 0.3
    return net, model, y


def test_parameter_layers_in_depth_order(tagger):
    _, model, _ = tagger
    layers = parameter_layers(model)
    assert [pl.op for pl in layers] == ["Conv2D", "Conv2D", "MatMul", "MatMul"]
    assert [pl.depth for pl in layers] == [1, 2, 3, 4]
    for pl in layers:                                   # every layer has its bias
        assert [v for _, v in pl.constants] == [0.0]
    # the deconvolution's cascade of c1 only holds c1
    assert [pl.depth for pl in parameter_layers(model, model.layer("c1").tensor)] == [1]


def test_randomised_model_is_the_keras_net_with_those_layers_reinitialised(tagger, keras):
    """The top two layers re-initialised: Glorot-uniform kernels within their limit, zero
    biases; the graph computes what Keras computes with those weights, and the layers below
    are untouched."""
    net, model, _ = tagger
    layers = parameter_layers(model)
    rand = randomised(model, layers[2:], seed=4)
    g, g0 = rand.graph, model.graph
    for pl in layers[:2]:
        np.testing.assert_array_equal(g.const_value(pl.kernel), g0.const_value(pl.kernel))
    weights = []
    for pl in layers:
        k = g.const_value(pl.kernel)
        bias = g.const_value(pl.constants[0][0])
        weights += [k, bias]
        if pl in layers[2:]:
            limit = np.sqrt(6.0 / (k.shape[0] + k.shape[1]))
            assert np.abs(k).max() <= limit and np.abs(k).max() > 0.8 * limit
            assert not np.allclose(k, g0.const_value(pl.kernel))
            np.testing.assert_array_equal(bias, 0.0)
    copy = keras.models.clone_model(net)
    copy.set_weights(weights)
    x = np.random.default_rng(0).standard_normal((3, BANDS, 24, 1)).astype(np.float32)
    out = mirdeconv.engine.run_graph(rand, x)
    np.testing.assert_allclose(out, copy.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, net.predict(x, verbose=0), atol=1e-3)
    # the same seed draws the same kernels, another seed others
    again = randomised(model, layers[2:], seed=4).graph.const_value(layers[3].kernel)
    np.testing.assert_array_equal(again, g.const_value(layers[3].kernel))
    other = randomised(model, layers[2:], seed=5).graph.const_value(layers[3].kernel)
    assert not np.allclose(other, again)


def _branchy_net(keras):
    """Two parallel convolutions (each with a batch norm), concatenated, a residual
    convolution, a batch norm after the merge, a reshape before a dense layer's bias."""
    keras.utils.set_random_seed(4)
    L = keras.layers
    inp = keras.Input((BANDS, 24, 1))
    a = L.BatchNormalization(name="bn_a")(L.Conv2D(3, 3, padding="same", name="ca")(inp))
    b = L.BatchNormalization(name="bn_b")(L.Conv2D(3, (1, 5), padding="same", name="cb")(inp))
    x = L.ReLU()(L.Concatenate(name="cat")([a, b]))
    x = L.Add(name="res")([x, L.Conv2D(6, 3, padding="same", name="cr")(x)])
    x = L.BatchNormalization(name="bn_m")(L.GlobalMaxPooling2D()(x))
    out = L.Dense(len(TAGS), activation="sigmoid", name="head")(x)
    net = keras.Model(inp, out)
    for layer in net.layers:                     # batch norms with non-trivial statistics
        if isinstance(layer, L.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            rng = np.random.default_rng(n)
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 1, n),
                               rng.normal(0, 1, n), rng.uniform(0.5, 2, n)])
    return net


def test_every_learned_constant_belongs_to_a_layer_and_is_reinitialised(keras):
    """Parallel branches share a depth; the batch norms after each branch and after the merge
    are re-initialised with their layers (scale 1, offset 0, mean 0, variance 1), as the
    Keras net with those weights computes."""
    net = _branchy_net(keras)
    rep = MelSpectrogram(sr=SR, n_fft=256, hop_length=128, n_mels=BANDS, compression="log10")
    model = from_keras(net, rep, labels=TAGS, layers=["cr"])
    layers = parameter_layers(model)
    assert [(pl.op, pl.depth) for pl in layers] == [("Conv2D", 1), ("Conv2D", 1), ("Conv2D", 2),
                                                     ("MatMul", 3)]
    g = model.graph
    owned = {c for pl in layers for c, _ in pl.constants} | {pl.kernel for pl in layers}
    learned = {n.name for n in g.graph_def.node if n.op == "Const"
               and g.const_value(n.name).dtype.kind == "f" and g.const_value(n.name).size > 1}
    assert learned <= owned, learned - owned
    rand = randomised(model, layers, seed=2)
    copy = keras.models.clone_model(net)
    copy.set_weights(net.get_weights())
    kernels = {pl.name.split("/")[-2].rsplit("_", 1)[0]: rand.graph.const_value(pl.kernel)
               for pl in layers}
    for layer in copy.layers:
        w = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):   # folded: the identity
            n = w[0].shape[0]
            layer.set_weights([np.ones(n), np.zeros(n), np.zeros(n), np.ones(n) - layer.epsilon])
        elif w:
            layer.set_weights([kernels[layer.name].reshape(w[0].shape), np.zeros_like(w[1])])
    x = np.random.default_rng(1).standard_normal((2, BANDS, 24, 1)).astype(np.float32)
    np.testing.assert_allclose(mirdeconv.engine.run_graph(rand, x), copy.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_similarity_measures():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((60, 16))
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, np.exp(np.abs(a))) == pytest.approx(1.0)   # ranks only
    assert rank_correlation(a, -a) == pytest.approx(1.0)                  # magnitudes
    assert rank_correlation(a, -a, absolute=False) == pytest.approx(-1.0)
    assert abs(rank_correlation(a, rng.standard_normal(a.shape))) < 0.1
    assert ssim(a, 3 * a) == pytest.approx(1.0)
    assert ssim(a, rng.standard_normal(a.shape)) < 0.2
    assert rank_correlation(a, np.zeros_like(a)) == 0.0                  # nothing ranks alike
    assert np.isnan(rank_correlation(0 * a, 0 * a)) and np.isnan(ssim(np.zeros_like(a), a))


def test_explanation_cascade_equals_explanations_computed_here(tagger):
    """Each step's figure is the similarity of the explanation of the model randomised that
    far with the trained model's, for the trained model's top tag."""
    _, model, y = tagger
    methods = ["saliency", "guided", "integrated_gradients", "gradcam"]
    c = explanation_cascade(model, y, SR, methods=methods, layer="c2", seed=1)
    assert c.steps == ["trained", "logits_1", "d1_1", "c2_1", "c1_1"]    # Keras 3 traced names
    assert c.spearman.shape == c.ssim.shape == (4, 5)
    np.testing.assert_array_equal(c.spearman[:, 0], 1.0)
    top = mirdeconv.explain(model, y, SR).indices[0]
    assert c.subject == f'tag "{TAGS[top]}"'
    layers = parameter_layers(model)
    for k in (1, 3):
        rand = randomised(model, layers[-k:], seed=1)
        for i, method in ((0, "saliency"), (3, "gradcam")):
            kw = {"layer": "c2"} if method == "gradcam" else {}
            a = mirdeconv.explain(model, y, SR, tag=top, method=method, **kw).masks[0]
            b = mirdeconv.explain(rand, y, SR, tag=top, method=method, **kw).masks[0]
            assert c.spearman[i, k] == pytest.approx(rank_correlation(a, b), abs=1e-9)
            assert c.ssim[i, k] == pytest.approx(ssim(a, b), abs=1e-9)
    # every layer random: the gradient no longer ranks the bins as the trained net's did
    assert c.spearman[0, -1] < 0.9


def test_cascade_verdicts():
    rho = np.array([[1.0, 0.4, 0.3, 0.1], [1.0, 0.9, 0.6, 0.3], [1.0, 0.45, 0.55, 0.2],
                    [1.0, np.nan, np.nan, np.nan]])
    c = Cascade("explanation", "m", 'tag "x"', ["a", "b", "c", "d"], ["trained", "l3", "l2", "l1"],
                rho, rho, rho, np.zeros(4))
    assert c.passes() == {"a": True, "b": False, "c": False, "d": False}
    assert c.first_below() == {"a": "l3", "b": "l1", "c": "l3", "d": None}
    assert PASS_BELOW == 0.5
    back = Cascade.from_dict(json.loads(json.dumps(c.to_dict()).replace("NaN", "null")))
    assert back.passes() == c.passes()
    np.testing.assert_array_equal(back.spearman, rho)


def test_deconvolution_cascade_only_randomises_what_the_layer_depends_on(tagger):
    _, model, y = tagger
    c = deconvolution_cascade(model, y, SR, layer="c2", features=[0, 3])
    assert c.steps == ["trained", "c2_1", "c1_1"] and c.subject == "layer c2, features 0, 3"
    assert c.methods == ["deconvnet", "guided", "saliency"]
    assert np.isfinite(c.spearman).all()
    # the most active features are taken when a count is given
    top = deconvolution_cascade(model, y, SR, layer="c1", top=2, methods=["saliency"])
    peaks = mirdeconv.deconvolve(model, y, SR, layer="c1").activation_max
    want = np.argsort(-peaks, kind="stable")[:2]
    assert top.subject == f"layer c1, features {want[0]}, {want[1]}"


def _two_band_net(keras):
    """One layer, two full-height filters: feature 0 sums the bins below 300 Hz, feature 1
    those above 2 kHz (Choi's STFT, 257 bins at 12 kHz)."""
    rep = choi2016_stft()
    freqs = np.arange(rep.n_bands) * rep.sr / rep.n_fft
    k = np.zeros((rep.n_bands, 1, 1, 2), np.float32)
    k[freqs < 300, 0, 0, 0] = 1.0
    k[freqs > 2000, 0, 0, 1] = 1.0
    L = keras.layers
    inp = L.Input((rep.n_bands, None, 1))
    conv = L.Conv2D(2, (rep.n_bands, 1), activation="relu", name="bands")
    out = conv(inp)
    conv.set_weights([k, np.zeros(2, np.float32)])
    return mirdeconv.load_model(keras.Model(inp, out), representation=rep), rep


def test_selectivity_of_a_planted_net(keras):
    """A low tone and a high tone: each band feature's auralisation keeps its own tone, so it
    re-excites its own feature and hardly the other."""
    model, rep = _two_band_net(keras)
    t = np.arange(rep.sr * 3) / rep.sr
    y = (0.4 * np.sin(2 * np.pi * 110 * t) + 0.4 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    s = selectivity(model, y, rep.sr, layer="bands", features=[0, 1])
    assert s.retention.shape == (2, 2)
    assert (s.rank == 1).all()
    assert (s.own > 0.5).all() and (s.others < 0.05).all(), s.retention
    assert s.summary()["rank1_share"] == 1.0 and s.summary()["median_ratio"] > 10


def test_report_round_trip_and_cache(tagger, tmp_path):
    _, model, y = tagger
    kw = {"methods": ["saliency", "deconvnet"], "top": 2, "selectivity_top": 2}
    report = sanity_check(model, y, SR, track_name="noise", **kw)
    assert report.explanations.methods == ["saliency", "deconvnet"]
    assert [s.layer for s in report.selectivity] == ["c1", "c2"]
    files = save_report(report, tmp_path / "r")
    assert sorted(f.name for f in files) == ["sanity.json", "sanity.md", "sanity.png"]
    json.loads((tmp_path / "r" / "sanity.json").read_text(), parse_constant=pytest.fail)
    back = load_report(tmp_path / "r")
    np.testing.assert_array_equal(back.explanations.spearman, report.explanations.spearman)
    np.testing.assert_array_equal(back.selectivity[1].retention, report.selectivity[1].retention)
    md = report.markdown()
    assert "| saliency |" in md and "## Selectivity of the auralisations" in md
    # cached per model, excerpt and settings: the second call reads the first one's folder
    first, folder = cached_sanity_check(model, y, SR, cache=tmp_path / "c", **kw)
    stamp = (folder / "sanity.json").stat().st_mtime_ns
    second, again = cached_sanity_check(model, y, SR, cache=tmp_path / "c", **kw)
    assert again == folder and (folder / "sanity.json").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.deconvolution.ssim, first.deconvolution.ssim)
    _, other = cached_sanity_check(model, y, SR, cache=tmp_path / "c", **{**kw, "top": 1})
    assert other != folder
    # the key holds every setting with its default filled in, and the model's representation
    assert report_folder(model, y, SR, cache=tmp_path / "c", seconds=30.0, **kw) == folder
    louder = dataclasses.replace(model, representation=dataclasses.replace(
        model.representation, fmin=50.0))
    assert report_folder(louder, y, SR, cache=tmp_path / "c", **kw) != folder


def test_one_progress_count_over_every_stage(tagger):
    _, model, y = tagger
    seen = []
    sanity_check(model, y, SR, methods=["saliency"], top=1, selectivity_top=1,
                 progress=lambda done, total: seen.append((done, total)))
    totals = {t for _, t in seen}
    assert len(totals) == 1
    total = totals.pop()        # 5 explanation maps, 3 x 3 deconvolutions, 1 + 1 features
    assert total == 5 + 9 + 2 and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cli_sanity(tagger, tmp_path, capsys):
    net, _, y = tagger
    import soundfile as sf

    net.save(tmp_path / "net.keras")
    sf.write(tmp_path / "noise.wav", y, SR)
    rep = MelSpectrogram(sr=SR, n_fft=256, hop_length=128, n_mels=BANDS, compression="log10")
    (tmp_path / "rep.json").write_text(json.dumps(rep.to_dict()))
    code = main(["sanity", str(tmp_path / "net.keras"), str(tmp_path / "noise.wav"),
                 "-r", str(tmp_path / "rep.json"), "--input-axes", "NFTC", "--methods",
                 "saliency", "--top", "2", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "deconvolutions (layer" in out and "selectivity of" in out
    assert (tmp_path / "out" / "sanity.png").is_file()
    code = main(["sanity", str(tmp_path / "net.keras"), str(tmp_path / "noise.wav"), "-r",
                 str(tmp_path / "rep.json"), "--methods", "nonsense", "--out", str(tmp_path / "x")])
    assert code == 2 and "nonsense" in capsys.readouterr().err


@pytest.mark.slow
def test_choi_tagger_cascade_on_a_real_recording():
    """Choi's tagger on the first 30 s of a real song: the gradient's map loses the trained
    one's ranking as soon as the output layer is random, deconvnet's keeps much of it."""
    from .test_explain import MULDJORD

    if not MULDJORD.is_file():
        pytest.skip("Debian's fretsonfire-songs-muldjord is not installed")
    weights = shared_file("models/choi2016/music_tagger_cnn_weights_tensorflow.h5")
    model = mirdeconv.load_model("choi2016:music_tagger_cnn", weights=str(weights))
    y, sr = mirdeconv.audio.load(MULDJORD)
    c = explanation_cascade(model, y[:30 * sr], sr, methods=["deconvnet", "saliency"])
    deconvnet, saliency = c.spearman
    assert saliency[1] < 0.5 < deconvnet[1]
    assert saliency[-1] < deconvnet[-1] - 0.15
    assert c.passes()["saliency"]


def test_top_is_the_count_and_features_the_old_name(tagger, tmp_path, capsys):
    """``top=`` is how many of the most active; ``features=N`` still means it, with a
    DeprecationWarning (``features=`` is otherwise feature indices); so does ``--features``."""
    import warnings

    from mirdeconv.cli import build_parser
    from mirdeconv.errors import InvalidOptionError

    _, model, y = tagger
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = deconvolution_cascade(model, y, SR, layer="c1", top=2, methods=["saliency"])
    with pytest.warns(DeprecationWarning, match="top=N"):
        old = deconvolution_cascade(model, y, SR, layer="c1", features=2, methods=["saliency"])
    assert old.subject == new.subject
    np.testing.assert_array_equal(old.spearman, new.spearman)
    with pytest.warns(DeprecationWarning, match="selectivity_top=N"), \
            pytest.raises(InvalidOptionError, match="top"):          # warned, then checked
        sanity_check(model, y, SR, methods=["saliency"], top=0, selectivity_features=1)
    # the same report, under either name
    kw = {"methods": ["saliency"], "cache": tmp_path}
    assert report_folder(model, y, SR, features=3, selectivity_features=2, **kw) \
        == report_folder(model, y, SR, top=3, selectivity_top=2, **kw) \
        != report_folder(model, y, SR, **kw)
    parser = build_parser()
    base = ["sanity", "m.keras", "a.wav", "--out", "o"]
    assert parser.parse_args(base + ["--top", "3"]).top == 3
    assert parser.parse_args(base).top == 8
    with pytest.warns(DeprecationWarning, match="--features is deprecated; use --top"):
        assert parser.parse_args(base + ["--features", "3"]).top == 3
    help_text = parser._subparsers._group_actions[0].choices["sanity"].format_help()
    assert "--features" not in help_text.replace("formerly --features", "")
