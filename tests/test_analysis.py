"""Probe stimuli, feature descriptors, invariance, labels: checked on answers known by construction."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from mirdeconv import analysis, probes
from mirdeconv.errors import InvalidOptionError
from mirdeconv.representations import choi2016_stft

REP = choi2016_stft()
NB = REP.n_bands
FREQS = np.arange(NB) * REP.sr / REP.n_fft


# ------------------------------------------------------------------------------ probes
def test_probe_set_design_and_ground_truth():
    clips = probes.probe_set(families=("chords",), keys=["A3"], instruments=["sine", "strings"])
    assert len(clips) == 2 * 5
    c = next(p for p in clips if p.name == "chords/A3/strings/major_minor")
    assert c.duration == pytest.approx(4.0) and c.sr == 22050 and c.audio.dtype == np.float32
    assert [lab for _, _, lab in c.chords] == ["A:maj", "A:min"]
    assert sorted(c.notes[c.notes[:, 0] == 0][:, 2].tolist()) == [57, 61, 64]
    assert c.onsets.tolist() == [0.0, 2.0]
    blank = next(p for p in clips if p.chord_set == "diminished_blank" and p.instrument == "sine")
    assert blank.chords[1][2] == "N" and np.abs(blank.audio[int(2.1 * 22050):]).max() < 1e-6
    # the pitch-class profile of A major + A minor: A, E twice as long as C#, C
    pcs = c.pitch_classes()
    assert pcs[9] == pytest.approx(pcs[4]) == pytest.approx(2 * pcs[1]) == pytest.approx(2 * pcs[0])


@pytest.mark.slow
def test_whole_probe_set():
    full = probes.probe_set()
    fam = [p.family for p in full]
    counts = [fam.count(f) for f in ("chords", "drums", "notes", "onsets")]
    assert counts == [120, 4, 6, 2]
    assert len({p.name for p in full}) == 132
    for p in full:                               # equally loud (RMS of the sounding part)
        y = p.audio[: len(p.audio) // 2048 * 2048].reshape(-1, 2048).astype(np.float64)
        e = (y ** 2).mean(axis=1)
        rms = np.sqrt(e[e > 1e-6 * e.max()].mean())
        assert np.abs(p.audio).max() <= 0.99 + 1e-6
        assert rms == pytest.approx(probes.LEVEL, rel=1e-3) or np.abs(p.audio).max() > 0.98, p.name


@pytest.mark.parametrize("instrument", probes.INSTRUMENTS)
def test_instrument_pitch_is_the_note(instrument):
    """Every synthesised instrument plays the annotated pitch (pyin, within 30 cents)."""
    import librosa

    y = probes.instrument_note(instrument, 57, 1.5, 22050)
    f0, voiced, _ = librosa.pyin(y[2205:], fmin=100, fmax=500, sr=22050)
    med = np.nanmedian(f0[voiced])
    assert abs(1200 * np.log2(med / 220.0)) < 30


def test_instruments_differ_in_spectral_envelope_and_attack():
    import librosa

    cents, attacks = {}, {}
    for inst in probes.INSTRUMENTS:
        y = probes.instrument_note(inst, 57, 1.0, 22050)
        cents[inst] = float(librosa.feature.spectral_centroid(y=y, sr=22050).mean())
        env = np.abs(y)
        attacks[inst] = np.argmax(env > 0.5 * env.max()) / 22050
    assert cents["sine"] < 260 < cents["saxophone"]
    assert len({round(c, -1) for c in cents.values()}) == 6
    assert attacks["strings"] > 0.05 > attacks["acoustic_guitar"]


def test_annotated_onsets_are_where_the_sound_starts():
    """librosa's detector on the drum loops and onset clips finds the annotated onsets."""
    import librosa
    import mir_eval

    for p in probes.probe_set(families=("drums", "onsets")):
        est = librosa.onset.onset_detect(y=p.audio, sr=p.sr, units="time")
        f, _, _ = mir_eval.onset.f_measure(p.onsets, est)
        assert f >= 0.9, (p.name, f)


def test_probes_are_deterministic_and_validate_options():
    a = probes.probe_set(families=("drums",), rhythms=["rock"])[0]
    b = probes.probe_set(families=("drums",), rhythms=["rock"])[0]
    assert np.array_equal(a.audio, b.audio)
    with pytest.raises(InvalidOptionError, match="unknown key 'C9'"):
        probes.probe_set(keys=["C9"])
    with pytest.raises(InvalidOptionError, match="unknown family 'noise'"):
        probes.probe_set(families=["noise"])
    with pytest.raises(InvalidOptionError, match="renderer"):
        probes.probe_set(renderer="midi")


def test_write_probes_jams(tmp_path):
    import jams
    import soundfile as sf

    clips = probes.probe_set(families=("chords", "drums"), keys=["G4"], instruments=["piano"],
                             chord_sets=["dom7_min7"], rhythms=["rock"])
    files = probes.write_probes(clips, tmp_path)
    assert (tmp_path / "probes.csv").is_file() and len(files) == 2 * len(clips) + 1
    j = jams.load(str(tmp_path / "chords/G4/piano/dom7_min7.jams"))   # validates the schema
    assert [o.value for o in j.search(namespace="chord")[0].data] == ["G:7", "G:min7"]
    assert sorted({o.value for o in j.search(namespace="note_midi")[0].data}) == [67, 70, 71, 74, 77]
    y, sr = sf.read(tmp_path / "drums/rock.wav")
    assert sr == 22050 and len(y) == 4 * 22050
    ref = analysis.Reference.from_jams(tmp_path / "drums/rock.jams")
    assert np.allclose(ref.onsets, clips[1].onsets) and ref.onsets_from == "annotations"
    probes.write_probes(clips[:1], tmp_path / "js", annotations="json")
    assert json.loads((tmp_path / "js/chords/G4/piano/dom7_min7.json").read_text())["key"] == "G4"


# ------------------------------------------------------------------------------ descriptors
def _ctx(p, rep=REP):
    an = rep.prepare(p.audio, p.sr)
    return analysis.TrackContext(an, analysis.Reference.from_probe(p))


def _identity(ctx):
    return np.ones((1, ctx.track.n_frames, ctx.track.frames.shape[1]), np.float32)


def test_identity_mask_on_known_probes():
    drums = probes.probe_set(families=("drums",))
    for p in drums:
        ctx = _ctx(p)
        d = analysis.describe_masks(_identity(ctx), ctx).iloc[0]
        assert d.percussive_share >= 0.8, (p.name, d.percussive_share)
        assert d.energy_ratio == pytest.approx(1.0, abs=1e-5)
        assert d.attack_lift == pytest.approx(1.0, abs=1e-5)
        assert d.onset_f >= 0.8, (p.name, d.onset_f)
    for inst in ("sine", "piano", "strings"):
        p = probes.probe_set(families=("chords",), keys=["A3"], instruments=[inst],
                             chord_sets=["major_minor"])[0]
        ctx = _ctx(p)
        d = analysis.describe_masks(_identity(ctx), ctx).iloc[0]
        assert d.harmonic_share >= 0.8, (inst, d.harmonic_share)
        assert d.pitch_correlation >= 0.8, (inst, d.pitch_correlation)
        assert d.temporal_sparsity < 0.3


def test_band_mask_and_silence():
    p = probes.probe_set(families=("drums",), rhythms=["rock"])[0]
    ctx = _ctx(p)
    m = np.zeros((3, ctx.track.n_frames, NB), np.float32)
    m[0][:, FREQS < 180] = 1.0           # low band only
    m[1][:, FREQS > 2500] = 1.0          # high band only
    d = analysis.describe_masks(m, ctx)
    assert d.low_share[0] > 0.99 and d.centroid_hz[0] < 200
    assert d.high_share[1] > 0.99 and d.centroid_hz[1] > 2500
    assert d.output_energy[2] == 0 and np.isnan(d.centroid_hz[2]) and d.onset_f[2] == 0
    assert np.isnan(d.sdr_percussive[2]) and np.isnan(d.percussive_share[2])


def test_hpss_parts_where_the_track_is_silent():
    """The context keeps librosa's percussive mask only: the harmonic one is its complement,
    also where the track is silent (both medians 0: librosa splits them, 0.5 each)."""
    import dataclasses

    import librosa

    p = probes.probe_set(families=("drums",), rhythms=["rock"])[0]
    y = p.audio.copy()
    y[len(y) // 3:2 * len(y) // 3] = 0.0
    ctx = _ctx(dataclasses.replace(p, audio=y))
    mh, mp = librosa.decompose.hpss(np.abs(ctx.X), mask=True)
    np.testing.assert_allclose(mp + mh, 1.0, atol=1e-6)
    power = np.abs(ctx.X) ** 2
    p_power, h_power = ctx.hpss_power(0, ctx.X.shape[1])
    np.testing.assert_allclose(p_power, mp ** 2 * power, rtol=1e-5, atol=1e-6 * power.max())
    np.testing.assert_allclose(h_power, mh ** 2 * power, rtol=1e-5, atol=1e-6 * power.max())


def test_context_and_descriptors_block_by_block(monkeypatch):
    """The track context (HPSS, references) and the descriptors go block by block; with
    16-frame blocks (a 4-s probe has ~170 frames) they equal librosa's whole-track HPSS and
    the one-block descriptors."""
    import librosa

    import mirdeconv.analysis.context as context_mod
    import mirdeconv.analysis.descriptors as descriptors_mod
    import mirdeconv.inversion as inversion_mod

    p = probes.probe_set(families=("drums",), rhythms=["rock"])[0]
    whole = _ctx(p)
    rng = np.random.default_rng(3)
    masks = rng.uniform(0, 1, (3, whole.track.n_frames, NB)).astype(np.float32)
    want = analysis.describe_masks(masks, whole)
    for mod in (context_mod, descriptors_mod, inversion_mod):
        monkeypatch.setattr(mod, "BLOCK_FRAMES", 16)
    ctx = _ctx(p)
    assert ctx.X.shape[1] > 8 * 16
    mh, mp = librosa.decompose.hpss(np.abs(ctx.X), mask=True)
    power = np.abs(ctx.X) ** 2
    p_power, h_power = ctx.hpss_power(0, ctx.X.shape[1])
    np.testing.assert_allclose(p_power, mp ** 2 * power, rtol=1e-5, atol=1e-6 * power.max())
    np.testing.assert_allclose(h_power, mh ** 2 * power, rtol=1e-5, atol=1e-6 * power.max())
    ref = ctx.istft(mp[None] * ctx.X[None])[0]
    np.testing.assert_allclose(ctx.refs["percussive"][0], ref, atol=1e-6 * np.abs(ref).max())
    got = analysis.describe_masks(masks, ctx)
    for col in ("output_energy", "energy_ratio", "percussive_share", "centroid_hz", "low_share",
                "attack_lift", "onset_f", "sdr_percussive", "sdr_harmonic", "temporal_sparsity"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-5, err_msg=col)


def test_a_spilled_track_is_read_block_by_block(monkeypatch, mapped_rss):
    """A long track's STFT goes to a memory map (spill_track), and with it the context's HPSS
    mask: the descriptors and the sounds are the same as from RAM, read in blocks of 16
    frames here, and neither map is resident after them."""
    import mirdeconv.analysis.context as context_mod
    import mirdeconv.analysis.descriptors as descriptors_mod
    import mirdeconv.auralisation as auralisation_mod
    import mirdeconv.inversion as inversion_mod
    from mirdeconv.engine import spill_track

    for mod in (context_mod, descriptors_mod, inversion_mod, auralisation_mod):
        monkeypatch.setattr(mod, "BLOCK_FRAMES", 16)
    p = probes.probe_set(families=("drums",), rhythms=["rock"])[0]
    track = REP.prepare(p.audio, p.sr)
    assert spill_track(track, 1 << 30) is track                  # small: stays in RAM
    spilled = spill_track(track, 0)
    assert isinstance(spilled.stft, np.memmap) and not isinstance(track.stft, np.memmap)
    np.testing.assert_array_equal(spilled.stft, track.stft)
    rng = np.random.default_rng(5)
    masks = rng.uniform(0, 1, (2, track.n_frames, NB)).astype(np.float32)
    ram = analysis.TrackContext(track, analysis.Reference.from_probe(p))
    mapped = analysis.TrackContext(spilled, analysis.Reference.from_probe(p))
    assert isinstance(mapped.p_mask, np.memmap) and not isinstance(ram.p_mask, np.memmap)
    want, got = analysis.describe_masks(masks, ram), analysis.describe_masks(masks, mapped)
    for col in ("output_energy", "percussive_share", "onset_f", "sdr_percussive"):
        np.testing.assert_array_equal(got[col], want[col], err_msg=col)
    sound_ram = auralisation_mod.auralise_masks(masks, track)[0]
    sound_mapped = auralisation_mod.auralise_masks(masks, spilled)[0]
    np.testing.assert_array_equal(sound_mapped, sound_ram)
    for arr in (spilled.stft, mapped.p_mask):                   # each read gave its pages back
        assert mapped_rss(arr.filename) < 64 << 10, arr.dtype


def test_fast_sdr_equals_mir_eval(mapped_rss):
    import mir_eval

    p = probes.probe_set(families=("chords",), keys=["Eb2"], instruments=["piano"],
                         chord_sets=["intervals"])[0]
    ctx = _ctx(p)
    # the separation references are kept in a memory map (a long track's are ~230 MB) and
    # are not resident once fast_sdr has read them
    assert all(isinstance(ctx.refs[k][0], np.memmap) for k in ("percussive", "harmonic"))
    rng = np.random.default_rng(1)
    masks = rng.uniform(0, 1, (3, ctx.track.n_frames, NB)).astype(np.float32)
    d = analysis.describe_masks(masks, ctx)
    assert mapped_rss(ctx.refs["percussive"][0].filename) < 64 << 10
    from mirdeconv.auralisation import stft_domain_mask

    a = ctx.istft(stft_domain_mask(masks, ctx.track) * ctx.X[None]).astype(np.float64)
    import librosa

    mh, mp = librosa.decompose.hpss(np.abs(ctx.X), mask=True)
    refs = {"percussive": ctx.istft(mp[None] * ctx.X[None])[0],
            "harmonic": ctx.istft(mh[None] * ctx.X[None])[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for name, r in refs.items():
            for i in range(3):
                sdr = mir_eval.separation.bss_eval_sources(r[None].astype(np.float64), a[i][None],
                                                           compute_permutation=False)[0][0]
                assert d[f"sdr_{name}"][i] == pytest.approx(sdr, abs=1e-6)


def test_invariance_scores():
    rng = np.random.default_rng(0)
    by_instrument = np.broadcast_to(rng.uniform(0, 1, 6)[None, :, None], (4, 6, 5))
    inv = analysis.invariance(by_instrument)
    assert inv["invariance_key"] == pytest.approx(1) and inv["invariance_chord"] == pytest.approx(1)
    assert inv["invariance_instrument"] == pytest.approx(0)
    mixed = by_instrument + np.broadcast_to(rng.uniform(0, 1, 4)[:, None, None], (4, 6, 5))
    inv = analysis.invariance(mixed)
    assert 0 < inv["invariance_key"] < 1 and 0 < inv["invariance_instrument"] < 1
    assert np.isnan(analysis.invariance(np.ones((4, 6, 5)))["invariance_key"])


def test_label_rules_and_evidence():
    lab, tags = analysis.label({"onset_f": 0.83, "attack_lift": 1.5, "low_share": 0.78,
                                "percussive_share": 0.9, "harmonic_share": 0.1,
                                "temporal_sparsity": 0.6, "dead": False})
    assert lab.startswith("onset detector: F = 0.83, 1.5x the energy at onsets; "
                          "low band / bass: 78 % of energy below 200 Hz")
    assert tags == ["onset detector", "low band", "percussive"]
    lab, tags = analysis.label({"harmonic_share": 0.91, "invariance_key": 0.93,
                                "invariance_instrument": 0.2, "temporal_sparsity": 0.1})
    assert tags == ["harmonic", "key-invariant", "instrument-specific"] and "key-invariant (0.93)" in lab
    lab, tags = analysis.label({"temporal_sparsity": 0.1, "energy_ratio": 0.4, "onset_f": 0.2})
    assert tags == ["texture"] and "passes 40 % of the track" in lab
    assert analysis.label({"dead": True})[1] == ["dead"]


# ------------------------------------------------------------------------------ planted nets
def _one_layer(keras, kernel, name, bias=0.0):
    L = keras.layers
    inp = L.Input((NB, None, 1), name="stft")
    conv = L.Conv2D(1, kernel.shape[:2], padding="same" if kernel.shape[0] < NB else "valid",
                    activation="relu", name=name)
    out = conv(inp)
    conv.set_weights([kernel.astype(np.float32), np.array([bias], np.float32)])
    from mirdeconv.loading import load_model

    return load_model(keras.Model(inp, out), representation=REP)


def test_planted_onset_detector(keras):
    """A vertical edge in time (energy now minus energy before) is an onset detector."""
    k = np.zeros((3, 3, 1, 1))
    k[:, 0], k[:, 2] = -1.0, 1.0
    model = _one_layer(keras, k, "edge")
    res = analysis.analyse(model, probes.probe_set(families=("drums",)))
    f = res.per_track["onset_f"].to_numpy()
    assert (f >= 0.8).all(), f
    assert (res.per_track["attack_lift"] >= 1.25).all()
    row = res.per_feature.iloc[0]
    assert row.primary == "onset detector" and row.label.startswith(f"onset detector: F = {row.onset_f:.2f}")
    # a horizontal edge (along frequency) is no onset detector
    flat = _one_layer(keras, np.transpose(k, (1, 0, 2, 3)), "hedge")
    res = analysis.analyse(flat, probes.probe_set(families=("drums",)))
    assert "onset detector" not in res.per_feature.iloc[0].tags
    assert (res.per_track["attack_lift"] < 0.8).all()


def test_planted_low_band(keras):
    k = (FREQS < 200).astype(float).reshape(NB, 1, 1, 1)
    model = _one_layer(keras, k, "lowpass")
    clips = probes.probe_set(families=("drums", "chords"), keys=["Eb2"], instruments=["piano"],
                             chord_sets=["major_minor"])
    row = analysis.analyse(model, clips).per_feature.iloc[0]
    assert row.low_share >= 0.95
    assert "low band" in row.tags and row.label.startswith("low band / bass: ")


def test_planted_chord_template_is_harmonic_and_instrument_specific(keras):
    """The fundamentals of A major (A3, C#4, E4) minus their overtones: only the sine plays
    that spectrum, so the feature is harmonic and instrument-specific."""
    def comb(pitches, ks):
        out = np.zeros(NB)
        for p in pitches:
            for h in ks:
                f = h * 440 * 2 ** ((p - 69) / 12)
                out = np.maximum(out, np.maximum(0, 1 - np.abs(FREQS - f) / (REP.sr / REP.n_fft)))
        return out

    fund, over = comb((57, 61, 64), [1]), comb((57, 61, 64), range(2, 11))
    k = (fund - 2 * over * (fund == 0)).reshape(NB, 1, 1, 1)
    model = _one_layer(keras, k, "template", bias=-10.0)
    clips = probes.probe_set(families=("chords",), keys=["A3", "G4"],
                             chord_sets=["major_minor", "dom7_min7"])
    res = analysis.analyse(model, clips)
    row = res.per_feature.iloc[0]
    assert row.harmonic_share >= 0.9 and "harmonic" in row.tags
    assert row.invariance_instrument <= 0.4 and "instrument-specific" in row.tags
    active = res.per_track[res.per_track.activation_max > 0]
    assert set(active["instrument"]) == {"sine"} and set(active["key"]) == {"A3"}


# ------------------------------------------------------------------------------ CLI and report
@pytest.mark.slow
def test_cli_analyse_probe_set_and_tracks(tmp_path, keras, capsys):
    import pandas as pd
    import soundfile as sf

    from mirdeconv.cli import main
    from mirdeconv.demo import demo_track, vggnet5

    vggnet5().save(tmp_path / "vgg.keras")
    rc = main(["analyse", str(tmp_path / "vgg.keras"), "-r", "choi2016-stft", "--layers",
               "pool1,pool2", "-f", "0-3", "--out", str(tmp_path / "an")])
    assert rc == 0
    feats = pd.read_parquet(tmp_path / "an/features.parquet")
    assert len(feats) == 8 and {"label", "onset_f", "percussive_share", "low_share", "centroid_hz",
                                "pitch_correlation", "sdr_harmonic", "invariance_key",
                                "invariance_instrument", "invariance_chord"} <= set(feats.columns)
    assert feats["invariance_key"].notna().any()
    per_track = pd.read_parquet(tmp_path / "an/per_track.parquet")
    assert len(per_track) == 8 * 132
    page = (tmp_path / "an/report.html").read_text()
    assert "<h2>pool1</h2>" in page and "<audio" in page and "librosa" not in page
    for src in (tmp_path / "an").glob("report/*.wav"):
        assert sf.info(src).duration == pytest.approx(4.0, abs=0.01)
    # a track without annotations: onsets from librosa, and the report says so
    sf.write(tmp_path / "song.wav", demo_track(seconds=6.0), 11025)
    rc = main(["analyse", str(tmp_path / "vgg.keras"), str(tmp_path / "song.wav"), "-r",
               "choi2016-stft", "--layers", "pool1", "-f", "0-1", "--out", str(tmp_path / "an2")])
    assert rc == 0
    page = (tmp_path / "an2/report.html").read_text()
    assert "Reference onsets were detected by librosa" in page and "song" in page
    assert "detected by librosa" in capsys.readouterr().out
    # bad input: a clear error, nothing written
    rc = main(["analyse", str(tmp_path / "vgg.keras"), str(tmp_path / "nope.wav"), "-r",
               "choi2016-stft", "--layers", "pool1", "--out", str(tmp_path / "an3")])
    assert rc == 2 and "nope.wav" in capsys.readouterr().err
    assert not (tmp_path / "an3" / "features.parquet").exists()
    rc = main(["analyse", str(tmp_path / "vgg.keras"), "-r", "choi2016-stft", "--layers", "pool9",
               "--out", str(tmp_path / "an4")])
    assert rc == 2 and "pool9" in capsys.readouterr().err and not (tmp_path / "an4").exists()


def test_cli_probes(tmp_path, capsys):
    from mirdeconv.cli import main

    assert main(["probes", "--out", str(tmp_path), "--families", "drums,onsets", "--sr", "16000"]) == 0
    assert "6 probe clips" in capsys.readouterr().out
    assert len(list(tmp_path.rglob("*.wav"))) == 6 and len(list(tmp_path.rglob("*.jams"))) == 6
    assert main(["probes", "--out", str(tmp_path), "--families", "bells"]) == 2
    assert "unknown family 'bells'" in capsys.readouterr().err


def test_soundfont_renderer_plays_the_same_notes():
    """The General MIDI soundfont (pretty_midi's TimGM6mb through fluidsynth) renders the
    annotated notes; its piano is not the synthesised one."""
    import os

    import librosa

    try:
        import fluidsynth  # noqa: F401
        import pretty_midi  # noqa: F401
    except (ImportError, OSError) as exc:
        if os.environ.get("MIRDECONV_REQUIRE_SOUNDFONT") == "1":
            pytest.fail(f"soundfont rendering is required here: {exc}")
        pytest.skip(f"pretty_midi/pyfluidsynth/libfluidsynth not available: {exc}")
    sf_ = probes.probe_set(families=("notes",), instruments=["piano"], renderer="soundfont")[0]
    synth = probes.probe_set(families=("notes",), instruments=["piano"])[0]
    assert sf_.audio.shape == synth.audio.shape and 0.1 < np.abs(sf_.audio).max() <= 0.99
    assert np.allclose(sf_.notes, synth.notes)
    for start, end, pitch in sf_.notes[2:]:          # A3 and G4 (pyin's range)
        seg = sf_.audio[int((start + 0.1) * 22050):int((end - 0.1) * 22050)]
        f0, voiced, _ = librosa.pyin(seg, fmin=150, fmax=500, sr=22050)
        assert abs(12 * np.log2(np.nanmedian(f0[voiced]) / 440) + 69 - pitch) < 0.3
    assert np.corrcoef(sf_.audio, synth.audio)[0, 1] < 0.5


@pytest.mark.parametrize("block", [1 << 18, 700, 100])
def test_lag_correlation_block_by_block(monkeypatch, block):
    """bss_eval's correlations D[k] = sum_n r[n] e[n + k], k < 512, block by block (blocks
    shorter than the filter too) equal the direct sums."""
    from mirdeconv.analysis import context

    monkeypatch.setattr(context, "SDR_BLOCK", block)
    rng = np.random.default_rng(block)
    n = 3000
    r, e = rng.standard_normal(n), rng.standard_normal((2, n))
    ref = np.array([[np.dot(r[:n - k], e[f, k:]) for k in range(512)] for f in range(2)])
    np.testing.assert_allclose(context.lag_correlation(e, r), ref, rtol=0, atol=1e-9)
