"""Class explanations against GradientTape references built here, patch by patch.

The net takes 24-frame patches of 16 bands (frequency first, as Choi's tagger), so a
60-frame track is 4 patches (hop 12) whose outputs the track-level prediction averages.
Every reference differentiates that average with respect to the track's frames (or the
stacked patches), independently of the engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mirdeconv
from mirdeconv import backend
from mirdeconv.adapters.keras import from_keras
from mirdeconv.errors import InvalidOptionError
from mirdeconv.explanations import ATTRIBUTIONS, explain, explanation_sound
from mirdeconv.options import SoundOptions
from mirdeconv.representations import MelSpectrogram

from .test_engine_rules import _ruled

BANDS, LENGTH, N_FRAMES, HOP = 16, 24, 60, 12
STARTS = [0, 12, 24, 36]
TAGS = ["drums", "bass", "keys"]


def build(keras, act, head="sigmoid"):
    L = keras.layers
    inp = keras.Input((BANDS, LENGTH, 1))
    x = act("relu", "r1")(L.Conv2D(4, 3, padding="same", name="c1")(inp))
    x = L.MaxPooling2D(2, name="p1")(x)
    x = act("elu", "r2")(L.Conv2D(6, 3, padding="same", name="c2")(x))
    x = L.Flatten(name="flat")(x)
    x = act("relu", "r3")(L.Dense(8, name="d1")(x))
    logits = L.Dense(len(TAGS), name="logits")(x)
    return keras.Model(inp, L.Activation(head, name="out")(logits))


@pytest.fixture(scope="module")
def net(keras):
    keras.utils.set_random_seed(15)
    L = keras.layers
    plain = lambda kind, name: {"relu": L.ReLU, "elu": L.ELU}[kind](name=name)  # noqa: E731
    model = build(keras, plain)
    rep = MelSpectrogram(sr=8000, n_fft=256, hop_length=128, n_mels=BANDS, compression="log10")
    fm = from_keras(model, rep, labels=TAGS, layers=["c1", "c2"])
    rng = np.random.default_rng(2)
    y = rng.standard_normal(128 * (N_FRAMES - 1)).astype(np.float32) * 0.3
    track = rep.prepare(y, 8000)
    assert track.n_frames == N_FRAMES
    return model, fm, track


def _patches(X):
    """The track's frames (n_frames, bands) -> the model input of its patches (N, bands, length, 1)."""
    return np.stack([X[s:s + LENGTH].T[..., None] for s in STARTS]).astype(np.float32)


def _overlap_add(G):
    """Patch attributions (N, bands, length, 1) -> the track's (n_frames, bands)."""
    out = np.zeros((N_FRAMES, BANDS), np.float64)
    for s, g in zip(STARTS, G):
        out[s:s + LENGTH] += g[..., 0].T
    return out


def _tape(keras, model, P, tag, method="saliency", head_out="logit", head="sigmoid"):
    """d mean_i(output_i[tag]) / d P: (N, bands, length, 1), through a copy of the net whose
    non-linearities carry the method's rule."""
    tf = backend.tensorflow()
    L = keras.layers
    ref = build(keras, lambda kind, name: L.Activation(_ruled(kind, method), name=name), head)
    ref.set_weights(model.get_weights())
    sub = keras.Model(ref.inputs, ref.get_layer("logits" if head_out == "logit" else "out").output)
    x = tf.constant(P)
    with tf.GradientTape() as tape:
        tape.watch(x)
        f = tf.reduce_mean(sub(x, training=False)[:, tag])
    return tape.gradient(f, x).numpy()


@pytest.mark.parametrize("method", ["saliency", "guided", "deconvnet"])
def test_a_tag_explains_the_average_of_the_patches(keras, net, method):
    """The explanation of a tag is the backward pass of the track-level (patch-averaged)
    logit with the method's rule, on the track's frames: overlaps add up."""
    model, fm, track = net
    P = _patches(track.frames)
    want = _overlap_add(_tape(keras, model, P, 1, method))
    got = explain(fm, track=track, tag="bass", method=method)
    assert got.masks.shape == (1, N_FRAMES, BANDS) and got.tags == ["bass"] and got.n_patches == 4
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got.masks[0], want, rtol=0, atol=1e-5 * np.abs(want).max())
    logits = keras.Model(model.inputs, model.get_layer("logits").output)(P).numpy()
    assert got.scores[0] == pytest.approx(logits[:, 1].mean(), rel=1e-5)
    assert got.probabilities[0] == pytest.approx(model(P).numpy()[:, 1].mean(), rel=1e-5)


def test_the_saliency_of_the_track_is_the_gradient_of_its_frames(keras, net):
    """Patch aggregation: the gradient of the averaged logit with respect to the track's
    frames themselves (the patches cut by slicing inside the tape)."""
    tf = backend.tensorflow()
    model, fm, track = net
    sub = keras.Model(model.inputs, model.get_layer("logits").output)
    X = tf.constant(track.frames)
    with tf.GradientTape() as tape:
        tape.watch(X)
        P = tf.stack([tf.transpose(X[s:s + LENGTH])[..., None] for s in STARTS])
        f = tf.reduce_mean(sub(P, training=False)[:, 2])
    want = tape.gradient(f, X).numpy()
    got = explain(fm, track=track, tag=2).masks[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_gradient_times_input_and_probability_outputs(keras, net):
    model, fm, track = net
    P = _patches(track.frames)
    want = _overlap_add(_tape(keras, model, P, 0, head_out="probability") * P)
    got = explain(fm, track=track, tag="Drums", method="gradient_x_input", output="probability")
    np.testing.assert_allclose(got.masks[0], want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert got.scores[0] == pytest.approx(got.probabilities[0])


def test_integrated_gradients_are_complete(keras, net):
    """Integrated gradients from silence (log10(1 + c * 0) = 0) with the midpoint rule equal
    the reference with the same steps, and add up to the logit's change within 1 %."""
    model, fm, track = net
    P = _patches(track.frames)
    steps = 64
    mean_grad = np.mean([_tape(keras, model, (k + 0.5) / steps * P, 0) for k in range(steps)], axis=0)
    want = _overlap_add(P * mean_grad)
    got = explain(fm, track=track, tag="drums", method="integrated_gradients", steps=steps)
    np.testing.assert_allclose(got.masks[0], want, rtol=0, atol=1e-5 * np.abs(want).max())
    sub = keras.Model(model.inputs, model.get_layer("logits").output)
    delta = sub(P).numpy()[:, 0].mean() - sub(np.zeros_like(P)).numpy()[:, 0].mean()
    assert got.baseline_scores[0] == pytest.approx(sub(np.zeros_like(P)).numpy()[:, 0].mean(), rel=1e-5)
    assert abs((P * mean_grad).sum() - delta) <= 0.01 * abs(delta)
    assert got.completeness[0] <= 0.01


def test_smoothgrad_with_the_same_noise(keras, net):
    """SmoothGrad's copies: noise of patch i, copy k from default_rng([seed, i, k]), scaled
    by the noise level times the patch's value range."""
    model, fm, track = net
    P = _patches(track.frames)
    copies, level, seed = 5, 0.2, 7
    grads = []
    for k in range(copies):
        noisy = np.stack([
            P[i] + (level * (P[i].max() - P[i].min())
                    * np.random.default_rng([seed, i, k]).standard_normal(P[i].shape)).astype(np.float32)
            for i in range(len(P))])
        grads.append(_tape(keras, model, noisy, 2))
    want = _overlap_add(np.mean(grads, axis=0))
    got = explain(fm, track=track, tag="keys", method="smoothgrad", copies=copies, noise=level,
                  seed=seed)
    np.testing.assert_allclose(got.masks[0], want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_a_softmax_output(keras):
    """The softmax's rule (its exact vector-Jacobian product) under a probability output."""
    keras.utils.set_random_seed(16)
    L = keras.layers
    model = build(keras, lambda kind, name: {"relu": L.ReLU, "elu": L.ELU}[kind](name=name),
                  head="softmax")
    rep = MelSpectrogram(sr=8000, n_fft=256, hop_length=128, n_mels=BANDS, compression="log10")
    fm = from_keras(model, rep, labels=TAGS, layers=["c1"])
    y = np.random.default_rng(4).standard_normal(128 * (N_FRAMES - 1)).astype(np.float32)
    track = rep.prepare(y, 8000)
    P = _patches(track.frames)
    want = _overlap_add(_tape(keras, model, P, 1, head_out="probability", head="softmax"))
    got = explain(fm, track=track, tag="bass", output="probability")
    np.testing.assert_allclose(got.masks[0], want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_gradcam_equals_its_definition(keras, net):
    """Grad-CAM at c2 (8 bands x 12 frames, 6 maps): each map weighted by the mean over the
    layer's grid of the averaged logit's gradient there, summed, rectified, resized to the
    patch by TensorFlow's bilinear resize, overlap-added."""
    tf = backend.tensorflow()
    model, fm, track = net
    P = tf.constant(_patches(track.frames))
    both = keras.Model(model.inputs, [model.get_layer("c2").output,
                                      model.get_layer("logits").output])
    with tf.GradientTape() as tape:
        A, logits = both(P, training=False)
        f = tf.reduce_mean(logits[:, 1])
    dA = tape.gradient(f, A)                                        # N, 8, 12, 6
    alpha = tf.reduce_mean(dA, axis=[1, 2], keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(alpha * A, axis=-1, keepdims=True))
    want = _overlap_add(tf.image.resize(cam, (BANDS, LENGTH), "bilinear").numpy())
    got = explain(fm, track=track, tag="bass", method="gradcam", layer="c2")
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got.masks[0], want, rtol=0, atol=1e-5 * np.abs(want).max())
    with pytest.raises(InvalidOptionError, match="gradcam needs a layer: one of c1, c2"):
        explain(fm, track=track, tag="bass", method="gradcam")
    plain = explain(fm, track=track, tag="bass")             # a method that takes no layer
    ignored = explain(fm, track=track, tag="bass", layer="c2")    # ignores one
    np.testing.assert_array_equal(ignored.masks, plain.masks)


def test_several_tags_at_once_equal_one_at_a_time(net):
    _, fm, track = net
    both = explain(fm, track=track, tag=["keys", "drums"], method="guided")
    assert both.tags == ["keys", "drums"] and both.indices == [2, 0]
    for t, tag in enumerate(both.tags):
        one = explain(fm, track=track, tag=tag, method="guided")
        np.testing.assert_allclose(both.masks[t], one.masks[0], rtol=1e-6, atol=1e-7)


def test_bad_requests_name_the_problem(keras, net):
    _, fm, track = net
    with pytest.raises(InvalidOptionError, match="no tag 'drum'.*'drums'"):
        explain(fm, track=track, tag="drum")
    with pytest.raises(InvalidOptionError, match="tag index 3 is out of range.*3 classes"):
        explain(fm, track=track, tag=3)
    with pytest.raises(InvalidOptionError, match="method must be one of deconvnet"):
        explain(fm, track=track, tag=0, method="lime")
    with pytest.raises(InvalidOptionError, match="output must be one of logit, probability"):
        explain(fm, track=track, tag=0, output="softmax")
    with pytest.raises(InvalidOptionError, match="steps must be an integer of at least 1"):
        explain(fm, track=track, tag=0, method="integrated_gradients", steps=0)
    L = keras.layers
    inp = keras.Input((BANDS, LENGTH, 1))
    linear = keras.Model(inp, L.Dense(2, name="lin")(L.Flatten()(L.Conv2D(2, 3, name="c")(inp))))
    lin = from_keras(linear, fm.representation, labels=["a", "b"])
    with pytest.raises(InvalidOptionError, match="has no logits; use output='probability'"):
        explain(lin, track=track, tag="a")
    assert explain(lin, track=track, tag="a", output="probability").masks.shape == (1, N_FRAMES, BANDS)


def test_the_explanation_and_its_complement_add_up_to_the_track(net):
    """Kept and removed sounds: masks m and 1 - m on the same STFT, so (without
    normalisation) their sum is the track's own inverse STFT; with ``top_percent`` the kept
    mask is binary and covers that share of the positive values."""
    from mirdeconv.explanations import unit_masks

    _, fm, track = net
    e = explain(fm, track=track, tag="drums", method="saliency")
    plain = SoundOptions(sign="positive", normalize="none")
    for top in (None, 25):
        kept, removed, sr = explanation_sound(e, sound=plain, top_percent=top)
        assert sr == 8000 and kept.shape == removed.shape == (1, len(track.audio))
        assert np.abs(kept).max() > 0 and np.abs(removed).max() > 0
        core = slice(256, len(track.audio) - 256)      # away from the edges' half windows
        np.testing.assert_allclose((kept + removed)[0][core], track.audio[core],
                                   atol=1e-4 * np.abs(track.audio).max())
    m = unit_masks(e.masks, "positive", top_percent=10)
    positive = (e.masks > 0).sum()
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert abs(m.sum() - 0.1 * positive) <= 0.02 * positive
    with pytest.raises(InvalidOptionError, match="top_percent must be in"):
        unit_masks(e.masks, top_percent=0)


def test_faithfulness_figures_equal_their_definitions(net):
    """Masked in and out (silence where the mask is 0), deletion and insertion in the
    explanation's order and at random: every figure recomputed here through the Keras
    model on the patches of the modified frames."""
    from mirdeconv.explanations import faithfulness, unit_masks

    model, fm, track = net
    e = explain(fm, track=track, tag=["bass", "keys"], method="gradient_x_input")
    f = faithfulness(fm, e, steps=4, seed=3)
    X = track.frames                                        # silence is 0 in log10(1 + c x)

    def p(frames):
        return model(_patches(frames)).numpy().mean(axis=0)

    full = p(X)
    m = unit_masks(e.masks, "positive")
    for t, c in enumerate(e.indices):
        pi, po = p(m[t] * X), p((1 - m[t]) * X)
        assert f.p[t] == pytest.approx(full[c], rel=1e-5)
        assert f.p_in[t] == pytest.approx(pi[c], rel=1e-5) and f.p_out[t] == pytest.approx(po[c], rel=1e-5)
        assert f.ad[t] == pytest.approx(100 * max(full[c] - pi[c], 0) / full[c], rel=1e-4, abs=1e-6)
        assert f.ag[t] == pytest.approx(100 * max(pi[c] - full[c], 0) / (1 - full[c]), rel=1e-4, abs=1e-6)
        assert f.ai[t] == (100.0 if pi[c] > full[c] else 0.0)
        assert f.ff[t] == pytest.approx(full[c] - po[c], rel=1e-4, abs=1e-6)
        assert f.fid_in[t] == (pi.argmax() == full.argmax())
        order = np.argsort(-e.masks[t].ravel(), kind="stable")
        for j, frac in enumerate([0, 0.25, 0.5, 0.75, 1.0]):
            gone = np.zeros(X.size, bool)
            gone[order[:int(round(frac * X.size))]] = True
            gone = gone.reshape(X.shape)
            assert f.deletion[t, j] == pytest.approx(p(np.where(gone, 0, X))[c], rel=1e-5)
            assert f.insertion[t, j] == pytest.approx(p(np.where(gone, X, 0))[c], rel=1e-5)
        assert f.deletion_area[t] == pytest.approx(np.trapezoid(f.deletion[t], f.fractions))
    assert f.deletion_random[:, 0] == pytest.approx(f.p) and f.insertion_random[:, -1] == pytest.approx(f.p)
    rows = f.table()
    assert [r["tag"] for r in rows] == ["bass", "keys"] and set(rows[0]) >= {"AI", "AD", "AG", "FF",
                                                                           "Fid-In", "deletion"}
    with pytest.raises(InvalidOptionError, match="steps must be an integer of at least 1"):
        faithfulness(fm, e, steps=0)


def test_faithfulness_through_resynthesised_audio(net):
    """The explanation's sound and its complement's, as a listener gets them, prepared again
    and fed through the Keras model on their patches: L-MAC's figures from those."""
    from mirdeconv.explanations.measures import AUDIO_DOMAIN_SOUND, audio_faithfulness

    model, fm, track = net
    e = explain(fm, track=track, tag=["bass", "keys"], method="saliency")
    rows = audio_faithfulness(fm, e)
    kept, removed, sr = explanation_sound(e, sound=AUDIO_DOMAIN_SOUND)
    assert sr == 8000 and np.abs(kept).max() < np.abs(track.audio).max() * 1.01

    def p(y):
        frames = fm.representation.prepare(y, sr).frames
        assert frames.shape == track.frames.shape
        return model(_patches(frames)).numpy().mean(axis=0)

    full = p(track.audio)
    for t, c in enumerate(e.indices):
        pi, po = p(kept[t]), p(removed[t])
        r = rows[t]
        assert r["tag"] == e.tags[t] and r["p"] == pytest.approx(full[c], rel=1e-5)
        assert r["p_in"] == pytest.approx(pi[c], rel=1e-5) and r["p_out"] == pytest.approx(po[c], rel=1e-5)
        assert r["AD"] == pytest.approx(100 * max(full[c] - pi[c], 0) / full[c], rel=1e-4, abs=1e-6)
        assert r["FF"] == pytest.approx(full[c] - po[c], rel=1e-4, abs=1e-6)
        assert r["Fid-In"] == (pi.argmax() == full.argmax())


def test_a_waveform_model_and_a_padded_last_patch(keras):
    """A raw-waveform tagger (silence is 0): saliency equals GradientTape through the track's
    samples cut into patches inside the tape; integrated gradients stay complete when the last
    patch passes the track's end (its padding is the same in the track and the baseline)."""
    from mirdeconv.engine.patches import plan_patches
    from mirdeconv.representations import Waveform

    tf = backend.tensorflow()
    keras.utils.set_random_seed(21)
    L = keras.layers
    inp = keras.Input((243, 1))
    x = L.MaxPooling1D(3, name="p1")(L.Conv1D(4, 9, strides=3, activation="relu", name="c1")(inp))
    x = L.Conv1D(5, 3, activation="relu", name="c2")(x)
    logits = L.Dense(2, name="logits")(L.Flatten()(x))
    model = keras.Model(inp, L.Activation("sigmoid")(logits))
    rep = Waveform(sr=8000)
    fm = from_keras(model, rep, labels=["a", "b"], layers=["c1", "c2"])
    y = (0.5 * np.random.default_rng(3).standard_normal(700)).astype(np.float32)
    track = rep.prepare(y, 8000)
    e = explain(fm, track=track, tag="b")
    n = track.frames.shape[0]
    fm_starts = plan_patches(fm, n).starts
    assert fm_starts[-1] + 243 > n                   # the last patch passes the end
    sub = keras.Model(model.inputs, model.get_layer("logits").output)
    X = tf.constant(track.frames[:, 0])
    with tf.GradientTape() as tape:
        tape.watch(X)
        fill = tf.zeros([max(0, fm_starts[-1] + 243 - n)])        # a waveform's silence
        padded = tf.concat([X, fill], 0)
        P = tf.stack([padded[s:s + 243] for s in fm_starts])[..., None]
        f = tf.reduce_mean(sub(P, training=False)[:, 1])
    want = tape.gradient(f, X).numpy()
    np.testing.assert_allclose(e.masks[0, :, 0], want, rtol=0, atol=1e-5 * np.abs(want).max())
    ig = explain(fm, track=track, tag="b", method="integrated_gradients", steps=64)
    delta = float(ig.scores[0] - ig.baseline_scores[0])
    assert abs(ig.masks.sum() - delta) <= 0.01 * abs(delta) and ig.completeness[0] <= 0.01


def test_what_cannot_be_explained_says_why(keras, net):
    """Grad-CAM inside the fused first layer, integrated gradients or faithfulness for a model
    that normalises its input by the track's statistics, tags of other types."""
    from mirdeconv.errors import UnsupportedGraphError
    from mirdeconv.explanations import faithfulness

    model, fm, track = net
    with pytest.raises(UnsupportedGraphError, match="inside the first layer.*take a later layer"):
        explain(fm, track=track, tag="bass", method="gradcam", layer="c1")
    normed = from_keras(model, fm.representation, labels=TAGS, layers=["c1"],
                        input_normalization="track")
    with pytest.raises(InvalidOptionError, match="normalises its input by the track's"):
        explain(normed, track=track, tag="bass", method="integrated_gradients")
    e = explain(normed, track=track, tag=np.int64(1))
    assert e.tags == ["bass"]
    with pytest.raises(InvalidOptionError, match="no fixed value to mask with"):
        faithfulness(normed, e)
    with pytest.raises(InvalidOptionError, match="a tag is a label or a class index; got True"):
        explain(fm, track=track, tag=True)
    with pytest.raises(InvalidOptionError, match="noise must be a number of at least 0"):
        explain(fm, track=track, tag=0, method="smoothgrad", noise="a")
    unlabelled = from_keras(model, fm.representation, layers=["c1"])
    with pytest.raises(InvalidOptionError, match="has no labels: give class indices \\(0..2\\)"):
        explain(unlabelled, track=track, tag="bass")
    with pytest.raises(InvalidOptionError, match="top_percent must be in"):
        explanation_sound(e, top_percent="many")


def test_every_method_is_a_row_of_the_table():
    assert list(ATTRIBUTIONS) == ["deconvnet", "guided", "saliency", "gradient_x_input",
                                  "integrated_gradients", "smoothgrad", "gradcam"]
    assert mirdeconv.explain is explain


def test_the_command_writes_masks_pictures_sounds_and_figures(keras, net, tmp_path, capsys):
    """``mirdeconv explain``: per tag the mask, a picture, the sound and its complement, and
    explanation.json with the scores; a bad tag fails with the suggestion and writes nothing."""
    import json

    import soundfile as sf

    from mirdeconv.cli import main

    model, fm, track = net
    model.save(tmp_path / "tagger.keras")
    (tmp_path / "tagger.mirdeconv.json").write_text(json.dumps(
        {"representation": fm.representation.to_dict(), "labels": TAGS}))
    sf.write(tmp_path / "song.wav", track.audio, 8000, subtype="FLOAT")
    out = tmp_path / "out"
    rc = main(["explain", str(tmp_path / "tagger.keras"), str(tmp_path / "song.wav"), "--tag", "bass",
               "--tag", "0", "--method", "integrated_gradients", "--steps", "8", "--top-percent",
               "20", "--faithfulness", "--out", str(out)])
    assert rc == 0
    folder = out / "song" / "integrated_gradients"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["000_drums.npy", "000_drums.png", "000_drums.wav", "000_drums_complement.wav",
                     "001_bass.npy", "001_bass.png", "001_bass.wav", "001_bass_complement.wav",
                     "explanation.json"]
    meta = json.loads((folder / "explanation.json").read_text())
    assert [t["tag"] for t in meta["tags"]] == ["bass", "drums"] and meta["top_percent"] == 20
    want = explain(fm, track=track, tag=["bass", "drums"], method="integrated_gradients", steps=8)
    np.testing.assert_allclose(np.load(folder / "001_bass.npy"), want.masks[0], rtol=1e-5,
                               atol=1e-6 * np.abs(want.masks[0]).max())
    assert meta["tags"][0]["probability"] == pytest.approx(float(want.probabilities[0]), rel=1e-5)
    from mirdeconv.explanations import faithfulness

    figures = faithfulness(fm, want, top_percent=20).table()
    assert [r["tag"] for r in meta["faithfulness"]] == ["bass", "drums"]
    assert meta["faithfulness"][0]["deletion"] == pytest.approx(figures[0]["deletion"], rel=1e-4)
    kept, sr = sf.read(folder / "001_bass.wav")
    assert sr == 8000 and len(kept) == len(track.audio) and np.abs(kept).max() > 0.5
    assert "bass" in capsys.readouterr().out
    rc = main(["explain", str(tmp_path / "tagger.keras"), str(tmp_path / "song.wav"), "--tag",
               "base", "--out", str(tmp_path / "bad")])
    assert rc == 2 and "no tag 'base'; did you mean 'bass'" in capsys.readouterr().err
    assert not any((tmp_path / "bad").rglob("*.*"))


MULDJORD = Path("/usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/song.ogg")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_musicnn_hears_drums_in_the_percussive_part(zoo_cache, method):
    """mtt-musicnn on the first 30 s of a real recording (Debian's
    fretsonfire-songs-muldjord, which .ci/run installs): the sound of its "drums" explanation
    has a larger percussive share (librosa's HPSS, power) than the track (measured: 0.70
    saliency, 0.90 integrated gradients, against 0.24), and deleting the track's bins in the
    explanation's order drops "drums" faster than in a random order."""
    import librosa

    from mirdeconv.audio import load
    from mirdeconv.explanations import faithfulness

    if not MULDJORD.is_file():
        pytest.skip("Debian's fretsonfire-songs-muldjord is not installed")

    def share(y):
        H, P = librosa.decompose.hpss(np.abs(librosa.stft(y, n_fft=1024, hop_length=256)) ** 2)
        return P.sum() / (H.sum() + P.sum())

    y, sr = load(MULDJORD)
    model = mirdeconv.load_model("mtt-musicnn")
    e = explain(model, y[:30 * sr], sr, tag="drums", method=method, steps=16)
    kept, removed, out_sr = explanation_sound(e, sound=SoundOptions(sign="positive",
                                                                    output_sr="model"))
    assert out_sr == 16000 and e.probabilities[0] > 0.2
    assert share(kept[0]) > share(e.track.audio) + 0.3
    f = faithfulness(model, e, steps=10)           # measured: deletion 0.04-0.06, random 0.13
    assert f.deletion_area[0] < 0.6 * f.deletion_random_area[0]
    assert f.ad[0] > 50                             # the mask alone does not keep "drums"


# -- ExplainOptions: every setting of an explanation, one default each, flags and pickers -----
def _doubled():
    """A method added as one row: twice the gradient, reading ``steps`` (to be seen in its
    help) and taking no layer."""
    from mirdeconv.explanations import Attribution

    return Attribution("doubled", "saliency", "twice the plain gradient (a test's row)",
                       weight=lambda x, b: 2.0, uses=("steps",))


def test_a_new_method_is_one_row_of_the_table(net, monkeypatch, capsys):
    """One row added to ATTRIBUTIONS: explain runs it, and ``mirdeconv explain --help`` lists it
    with what it reads (the app's picker: tests/test_app.py)."""
    import dataclasses

    from mirdeconv.cli import main

    _, fm, track = net
    monkeypatch.setitem(ATTRIBUTIONS, "doubled", _doubled())
    got = explain(fm, track=track, tag="bass", method="doubled")
    want = explain(fm, track=track, tag="bass", method="saliency")
    np.testing.assert_allclose(got.masks, 2 * want.masks, rtol=1e-6)
    assert got.completeness is None and got.method == "doubled"
    assert main(["explain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "{deconvnet,guided,saliency,gradient_x_input,integrated_gradients,smoothgrad,gradcam," \
           "doubled}" in text
    assert "doubled: twice the plain gradient (a test's row) (reads steps)" in text
    assert "read by: integrated_gradients, doubled" in text
    # completeness is what a row says it reports, whatever its name
    monkeypatch.setitem(ATTRIBUTIONS, "ig", dataclasses.replace(
        ATTRIBUTIONS["integrated_gradients"], name="ig"))
    ig = explain(fm, track=track, tag="bass", method="ig", steps=4)
    assert ig.completeness is not None and ig.baseline_scores is not None


def test_explain_options_are_one_object_with_one_default_each(net):
    from mirdeconv.explanations import DEFAULT_METHOD, ExplainOptions
    from mirdeconv.options import choices

    _, fm, track = net
    o = ExplainOptions()
    assert (o.method, o.output, o.layer) == (DEFAULT_METHOD, "logit", None) == ("saliency", "logit",
                                                                                 None)
    assert mirdeconv.ExplainOptions is ExplainOptions
    assert [c.name for c in choices(ExplainOptions)] == ["method", "output", "steps", "copies",
                                                         "noise", "seed", "layer"]
    import inspect

    sig = inspect.signature(explain).parameters
    assert all(sig[k].default == getattr(o, k) for k in ("method", "output", "steps", "copies",
                                                         "noise", "seed", "layer"))
    # a method that takes no layer ignores one; Grad-CAM keeps it
    assert ExplainOptions(layer="c2").layer is None
    assert ExplainOptions(method="gradcam", layer="c2").key() == {
        "method": "gradcam", "output": "logit", "layer": "c2"}
    assert ExplainOptions(method="smoothgrad").key() == {
        "method": "smoothgrad", "output": "logit", "copies": 16, "noise": 0.15, "seed": 0}
    # the numbers checked by options.NUMBERS, the choices by their tables
    for bad, match in (({"copies": 0}, "copies must be an integer of at least 1"),
                       ({"steps": 1.5}, "steps must be an integer"),
                       ({"noise": -1.0}, "noise must be a number of at least 0"),
                       ({"method": "lime"}, "method must be one of deconvnet"),
                       ({"output": "target"}, "output must be one of logit, probability")):
        with pytest.raises(InvalidOptionError, match=match):
            ExplainOptions(**bad)
    # options= is the keywords in one object; not both
    opts = ExplainOptions(method="gradient_x_input", output="probability")
    a = explain(fm, track=track, tag="keys", options=opts)
    b = explain(fm, track=track, tag="keys", method="gradient_x_input", output="probability")
    np.testing.assert_array_equal(a.masks, b.masks)
    with pytest.raises(InvalidOptionError, match="give method either as keyword or in the "
                                                 "ExplainOptions"):
        explain(fm, track=track, tag="keys", options=opts, method="guided")
    # the old name of copies still works, and says so
    with pytest.warns(DeprecationWarning, match="copies="):
        old = explain(fm, track=track, tag="keys", method="smoothgrad", samples=2)
    assert old.settings.copies == 2


def test_the_default_method_is_written_once():
    """No default of a method is typed again: in the library, the CLI and the app every
    default of "saliency" (a keyword default, a field's or flag's ``default=``, a picker's
    ``index("saliency")``) is ExplainOptions' field, once."""
    import ast

    root = Path(mirdeconv.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            consts: list[ast.AST] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                consts += node.args.defaults + [d for d in node.args.kw_defaults if d]
            elif isinstance(node, ast.Call):
                consts += [k.value for k in node.keywords if k.arg == "default"]
                if isinstance(node.func, ast.Attribute) and node.func.attr == "index":
                    consts += node.args
            found += [f"{path.relative_to(root)}:{c.lineno}" for c in consts
                      if isinstance(c, ast.Constant) and c.value == "saliency"]
    assert len(found) == 1 and found[0].startswith("explanations/options.py:"), found


def test_explain_flags_are_the_library_names_and_old_ones_still_work(capsys):
    """``--explained-output`` is explain(output=) (``--output`` stays the frozen graph's
    prediction tensor, as in every command, and ``--out`` the folder: argparse takes an exact
    flag before a prefix); ``--target`` and ``--samples`` still work and say what replaced
    them."""
    from mirdeconv.cli import build_parser
    from mirdeconv.cli.common import options_from_args
    from mirdeconv.explanations import ExplainOptions

    parser = build_parser()
    base = ["explain", "m.keras", "song.wav"]
    args = parser.parse_args(base + ["--explained-output", "probability", "--out", "o",
                                     "--output", "dense/Sigmoid", "--copies", "3", "-l", "c2"])
    assert (args.out, args.output) == ("o", "dense/Sigmoid")
    assert options_from_args(ExplainOptions, args) == ExplainOptions(output="probability",
                                                                     copies=3)
    args = parser.parse_args(base + ["-o", "o", "-m", "gradcam", "-l", "c2"])
    assert options_from_args(ExplainOptions, args) == ExplainOptions(method="gradcam",
                                                                     layer="c2")
    capsys.readouterr()
    with pytest.warns(DeprecationWarning) as caught:
        args = parser.parse_args(base + ["--target", "probability", "--samples", "5", "--out",
                                         "o"])
    assert [str(w.message) for w in caught] == ["--target is deprecated; use --explained-output",
                                                "--samples is deprecated; use --copies"]
    assert options_from_args(ExplainOptions, args) == ExplainOptions(output="probability",
                                                                     copies=5)
    err = capsys.readouterr().err.splitlines()
    assert err == ["mirdeconv: note: --target is deprecated; use --explained-output",
                   "mirdeconv: note: --samples is deprecated; use --copies"]
    with pytest.raises(SystemExit):                  # the alias keeps its choices
        parser.parse_args(base + ["--target", "map", "--out", "o"])
    help_text = parser._subparsers._group_actions[0].choices["explain"].format_help()
    assert "--target" not in help_text.replace("(formerly --target)", "")
