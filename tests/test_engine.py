"""Engine behaviour: whole-track vs patches, dead features, chunks, targets, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mirdeconv
from mirdeconv.adapters.keras import from_keras
from mirdeconv.engine import deconvolve
from mirdeconv.errors import (
    AudioTooShortError,
    FeatureIndexError,
    InvalidOptionError,
    MemoryBudgetError,
    ModelLoadError,
    UnknownLayerError,
)
from mirdeconv.options import parse_features
from mirdeconv.representations import LinearSpectrogram, MelSpectrogram

from .conftest import tone_track

REP = MelSpectrogram(sr=16000, n_fft=512, hop_length=256, n_mels=48, compression="log10")


@pytest.fixture(scope="module")
def fcn(keras):
    """Fully convolutional along time, built for 64-frame patches (NTFC layout)."""
    keras.utils.set_random_seed(11)
    L = keras.layers
    inp = keras.Input((64, 48, 1))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.MaxPooling2D(2, name="p1")(x)
    x = L.Conv2D(8, 3, padding="same", activation="elu", name="c2")(x)
    x = L.MaxPooling2D((2, 2), name="p2")(x)
    out = L.Dense(3)(L.GlobalAveragePooling2D()(x))
    return from_keras(keras.Model(inp, out), REP)


@pytest.fixture(scope="module")
def track():
    return tone_track(sr=16000, seconds=10.0)


def test_layers_of_fcn(fcn):
    names = [li.name for li in fcn.layers]
    assert names == ["c1", "p1", "c2", "p2"]
    p2 = fcn.layer("p2")
    assert p2.axes == "NTFC" and p2.time_axis == 1 and p2.feature_axis == 3
    assert p2.receptive_field == (10, 10) and p2.stride == (4, 4) and p2.time_agnostic
    assert fcn.input_length == 64


def test_whole_track_and_patches_agree_in_the_interior(fcn, track):
    whole = deconvolve(fcn, track, 16000, layer="p2", mode="whole")
    patches = deconvolve(fcn, track, 16000, layer="p2", mode="patches")
    assert whole.mode == "whole" and patches.mode == "patches"
    n = whole.masks.shape[1]
    assert whole.masks.shape == patches.masks.shape == (8, n, 48) and n == 626
    interior = slice(0, n - 64)   # the last patch is padded past the track's end
    scale = np.abs(whole.masks).max()
    np.testing.assert_allclose(patches.masks[:, interior], whole.masks[:, interior],
                               atol=1e-5 * scale)
    assert np.abs(patches.masks[:, -20:] - whole.masks[:, -20:]).max() < 0.5 * scale


def test_auto_mode_picks_whole_for_fully_convolutional(fcn, track):
    assert deconvolve(fcn, track, 16000, layer="c1", features=[0]).mode == "whole"


def test_chunks_do_not_change_the_result(fcn, track):
    from mirdeconv.engine import memory_plan

    a = deconvolve(fcn, track, 16000, layer="c2")
    b = deconvolve(fcn, track, 16000, layer="c2", memory="1M")  # a few features per pass
    np.testing.assert_allclose(a.masks, b.masks, atol=1e-6 * np.abs(a.masks).max())
    plan = memory_plan(fcn, fcn.representation.prepare(track, 16000), layer="c2",
                       options=mirdeconv.DeconvOptions(memory="1M"))
    calls = []
    deconvolve(fcn, track, 16000, layer="c2", memory="1M",
               progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]     # the track goes in chunks too, each chunk 8 features
    assert plan.n_pieces > 20 and total == 8 * plan.n_pieces
    assert calls[-1] == (total, total) and len(calls) > plan.n_pieces
    assert all(t == total for _, t in calls) and all(a < b for (a, _), (b, _) in
                                                     zip(calls, calls[1:]))
    with pytest.raises(MemoryBudgetError, match=r"the smallest chunk of layer c2 \(two receptive "
                       r"fields\) needs ~\d+ KiB, more than the memory budget of 1 B; give a "
                       r"larger --memory"):
        deconvolve(fcn, track, 16000, layer="c2", memory=1)


def test_feature_subset_equals_slice_of_all(fcn, track):
    all_ = deconvolve(fcn, track, 16000, layer="p1")
    some = deconvolve(fcn, track, 16000, layer="p1", features="5,1-2")
    assert some.features == [5, 1, 2]
    np.testing.assert_allclose(some.masks, all_.masks[[5, 1, 2]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(some.activation_max, all_.activation_max[[5, 1, 2]])


def test_activation_over_time(fcn, track):
    res = deconvolve(fcn, track, 16000, layer="p2", features=[0, 1])
    assert res.activations.shape == (2, 626 // 4)
    assert np.allclose(res.activations.max(axis=1), res.activation_max)


def test_dead_feature_is_zero_and_flagged(keras):
    """A filter that can never fire on a non-negative input: all-negative weights and bias."""
    L = keras.layers
    inp = keras.Input((33, 40, 1))
    conv = L.Conv2D(3, 3, padding="same", activation="relu", name="c")
    x = L.MaxPooling2D(2, name="p")(conv(inp))
    model = keras.Model(inp, x)
    w = np.abs(np.random.default_rng(0).standard_normal((3, 3, 1, 3))).astype(np.float32)
    w[..., 1] *= -1.0
    conv.set_weights([w, np.array([0.1, -1.0, 0.1], np.float32)])
    rep = LinearSpectrogram(sr=8000, n_fft=64, hop_length=32)      # magnitudes >= 0
    fm = from_keras(model, rep)
    y = tone_track(sr=8000, seconds=1.0)
    for method in ("deconvnet", "guided", "saliency"):
        for target in ("map", "max"):
            res = deconvolve(fm, y, 8000, layer="p", method=method, target=target)
            assert res.dead.tolist() == [False, True, False]
            assert np.isfinite(res.masks).all()
            assert not res.masks[1].any() and res.masks[0].any()
            assert res.activation_max[1] == 0 and res.fraction_active[1] == 0


def test_max_target_is_local(fcn, track):
    res = deconvolve(fcn, track, 16000, layer="p2", features=[0, 3], target="max")
    for m in res.masks:
        rows = np.flatnonzero(np.abs(m).sum(axis=1))
        assert 0 < rows.size <= 10 and rows.max() - rows.min() < 10


def test_max_target_in_patch_mode_matches_whole(fcn, track):
    a = deconvolve(fcn, track, 16000, layer="p1", features=[2], target="max", mode="whole")
    b = deconvolve(fcn, track, 16000, layer="p1", features=[2], target="max", mode="patches")
    np.testing.assert_allclose(a.masks, b.masks, atol=1e-5 * np.abs(a.masks).max())


@pytest.mark.parametrize("method", ["deconvnet", "guided", "saliency"])
def test_max_target_in_windows_equals_the_whole_track(fcn, track, monkeypatch, method):
    """With ``target="max"`` every feature's strongest unit is deconvolved from a window a
    few receptive fields long around it, all windows in one batch (two lengths at most: one
    window ends with the track); the masks equal the whole track's, the statistics too."""
    import mirdeconv.engine.api as api_mod
    import mirdeconv.engine.windows as windows_mod

    info = fcn.layer("p2")
    seen = []
    batch = windows_mod._window_batch
    monkeypatch.setattr(windows_mod, "_window_batch", lambda *a: seen.append(a[7]) or batch(*a))
    got = deconvolve(fcn, track, 16000, layer="p2", method=method, target="max")
    n, length = got.track.n_frames, windows_mod.window_length(*info.receptive_field[:1], info.stride[0])
    assert len(got.features) * length < n and sum(len(items) for items in seen) == 8
    monkeypatch.setattr(api_mod, "windowed_max", lambda *a: None)          # the whole track
    want = deconvolve(fcn, track, 16000, layer="p2", method=method, target="max")
    assert np.abs(want.masks).max() > 0
    np.testing.assert_allclose(got.masks, want.masks, rtol=0, atol=1e-5 * np.abs(want.masks).max())
    for name in ("activation_max", "activation_mean", "fraction_active", "activations", "dead"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6)


def test_not_fully_convolutional_uses_patches(keras, track):
    """A Reshape with the time length baked in: whole tracks cannot go through."""
    L = keras.layers
    inp = keras.Input((64, 48))
    x = L.Reshape((64, 48, 1))(inp)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c")(x)
    fm = from_keras(keras.Model(inp, x), REP)
    assert not fm.layer("c").time_agnostic and fm.input_axes == "NTF"
    res = deconvolve(fm, track, 16000, layer="c")
    assert res.mode == "patches" and res.masks.shape == (4, 626, 48)
    with pytest.raises(InvalidOptionError, match="not fully convolutional"):
        deconvolve(fm, track, 16000, layer="c", mode="whole")


def test_parse_features():
    assert parse_features("0-3, 7", 8) == [0, 1, 2, 3, 7]
    assert parse_features(None, 3) == [0, 1, 2] == parse_features("all", 3)
    assert parse_features(np.int64(2), 3) == [2]
    with pytest.raises(FeatureIndexError, match="feature index 64 is out of range.*64 features"):
        parse_features("0-64", 64)
    with pytest.raises(FeatureIndexError):
        parse_features([-1], 4)
    with pytest.raises(InvalidOptionError, match="cannot read .* in the feature selection"):
        parse_features("a-b", 4)
    with pytest.raises(InvalidOptionError, match="empty"):
        parse_features([], 4)


@pytest.mark.parametrize("kw,exc,msg", [
    ({"method": "lrp"}, InvalidOptionError, "method must be one of deconvnet, guided, saliency"),
    ({"target": "mean"}, InvalidOptionError, "target must be one of map, max"),
    ({"mode": "fast"}, InvalidOptionError, "mode must be one of"),
    ({"layer": "nope"}, UnknownLayerError, "unknown layer 'nope'.*c1, p1, c2, p2"),
])
def test_bad_options(fcn, track, kw, exc, msg):
    args = {"layer": "p1", **kw}
    with pytest.raises(exc, match=msg):
        deconvolve(fcn, track, 16000, **args)


def test_audio_shorter_than_receptive_field(fcn):
    short = tone_track(sr=16000, seconds=0.1)          # 7 frames < 10
    with pytest.raises(AudioTooShortError, match=r"0.10 s \(7 frames\).*p2 \(10 frames = 0.16 s\)"):
        deconvolve(fcn, short, 16000, layer="p2")
    assert deconvolve(fcn, short, 16000, layer="p1").masks.shape == (8, 7, 48)


def test_never_positive_features_are_dead_with_their_reason(keras):
    """A map negative everywhere (all-negative weights on a non-negative input, then an ELU)
    is dead for "never positive"; an all-zero one (ReLU) for "all zero"."""
    L = keras.layers
    inp = keras.Input((33, 40, 1))
    conv = L.Conv2D(3, 3, padding="same", name="c")
    x = L.ELU(name="e")(conv(inp))
    r = L.ReLU(name="r")(conv(inp))
    model = keras.Model(inp, [x, r])
    w = np.abs(np.random.default_rng(0).standard_normal((3, 3, 1, 3))).astype(np.float32)
    w[..., 1] *= -1.0
    conv.set_weights([w, np.array([0.1, -1.0, 0.1], np.float32)])
    fm = from_keras(model, LinearSpectrogram(sr=8000, n_fft=64, hop_length=32))
    y = tone_track(sr=8000, seconds=1.0)
    elu = deconvolve(fm, y, 8000, layer="e")
    assert elu.dead.tolist() == [False, True, False]
    assert list(elu.dead_reason) == ["", "never positive", ""]
    assert elu.activation_max[1] < 0
    assert not elu.masks[1].any()                    # the ELU rectifies the negative seed
    relu = deconvolve(fm, y, 8000, layer="r")
    assert list(relu.dead_reason) == ["", "all zero", ""]


def test_a_representation_with_the_wrong_bands_is_refused(keras):
    L = keras.layers
    inp = keras.Input((64, None, 1))
    model = keras.Model(inp, L.Conv2D(2, 3, padding="same", name="c")(inp))
    with pytest.raises(ModelLoadError, match="input has 64 bands .* the representation 33"):
        from_keras(model, LinearSpectrogram(sr=8000, n_fft=64, hop_length=32), input_axes="NFTC")


def test_plan_chunks_partitions_the_track():
    from mirdeconv.engine.chunks import plan_chunks

    plan = plan_chunks(1000, 96, rf=37, stride=8)
    cores = [range(c.start + c.core.start, c.start + c.core.stop) for c in plan]
    assert [f for r in cores for f in r] == list(range(1000))          # every frame once
    for c in plan:
        a = c.start + c.core.start
        assert a % 8 == 0 and c.core.start >= min(40, a) and c.stop - (c.start + c.core.stop) \
            >= min(40, 1000 - (c.start + c.core.stop))                  # margins >= rf, on the stride
        assert c.units == slice(c.core.start // 8, -(-c.core.stop // 8))
    assert len(plan_chunks(90, 96, rf=37, stride=8)) == 1


@pytest.mark.parametrize("method", ["deconvnet", "guided", "saliency"])
def test_a_long_track_in_chunks_equals_one_piece(keras, method):
    """With a budget so small that every chunk's core is shorter than twice the layer's
    receptive field (so fields reach across the cuts), the chunked masks and statistics equal the
    one-piece result."""
    from mirdeconv.engine.cache import compiled
    from mirdeconv.engine.memory import plan_memory

    keras.utils.set_random_seed(3)
    L = keras.layers
    inp = keras.Input((32, None, 1))
    x = inp
    for i, c in enumerate((8, 8, 16)):
        x = L.MaxPooling2D(2, name=f"p{i}")(L.Conv2D(c, 3, padding="same", activation="relu",
                                                       name=f"c{i}")(x))
    rep = MelSpectrogram(sr=8000, n_fft=256, hop_length=64, n_mels=32, compression="log10")
    m = mirdeconv.load_model(keras.Model(inp, x), representation=rep)
    y = (0.3 * np.random.default_rng(0).standard_normal(8000 * 12)).astype(np.float32)
    info = m.layer("p2")
    full = plan_memory(compiled(m, info, method, "float32"), m, info, rep.prepare(y, 8000),
                       mirdeconv.DeconvOptions(memory="3M"), True, 16)
    assert "of masks (memory-mapped: over 1/64 of the budget); budget 3 MiB" in full.describe()
    plan = full.chunks
    assert len(plan) > 20 and all(c.core.stop - c.core.start < 2 * info.receptive_field[0]
                                  for c in plan)
    one = mirdeconv.deconvolve(m, y, 8000, layer="p2", method=method, memory="64G")
    parts = mirdeconv.deconvolve(m, y, 8000, layer="p2", method=method, memory="3M")
    np.testing.assert_allclose(parts.masks, one.masks, rtol=0, atol=1e-5 * np.abs(one.masks).max())
    # 16 features' masks (3 MiB) pass 1/64 of the 3 MiB budget: a memory map, its file unlinked
    assert isinstance(parts.masks, np.memmap) and not isinstance(one.masks, np.memmap)
    assert parts.masks.nbytes > 1 << 20 and not Path(parts.masks.filename).exists()
    np.testing.assert_array_equal(parts.activation_max, one.activation_max)
    np.testing.assert_allclose(parts.activation_mean, one.activation_mean, rtol=1e-5)
    np.testing.assert_allclose(parts.fraction_active, one.fraction_active, rtol=1e-6)
    np.testing.assert_array_equal(parts.activations, one.activations)
    # target "max": the strongest units found chunk by chunk, each deconvolved in its window
    one = mirdeconv.deconvolve(m, y, 8000, layer="p2", method=method, target="max", memory="64G")
    calls = []
    parts = mirdeconv.deconvolve(m, y, 8000, layer="p2", method=method, target="max", memory="3M",
                                 progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (16, 16)                      # each feature once, whatever the chunks
    assert np.abs(one.masks).max() > 0
    np.testing.assert_allclose(parts.masks, one.masks, rtol=0, atol=1e-5 * np.abs(one.masks).max())
    np.testing.assert_array_equal(parts.activation_max, one.activation_max)


def test_patches_in_batches_equal_one_pass(fcn, track):
    """Under a small budget the track's patches go through the graph a few at a time; the
    weighted overlap-add of the batches and the statistics equal one pass over all patches."""
    from mirdeconv.engine import memory_plan

    tr = fcn.representation.prepare(track, 16000)
    opts = mirdeconv.DeconvOptions(mode="patches", memory="40M")
    plan = memory_plan(fcn, tr, layer="p2", options=opts)
    assert plan.unit == "patch" and plan.n_patches == 19 and 1 < plan.patches_per_pass < 19
    assert plan.n_pieces == -(-19 // plan.patches_per_pass)
    one = deconvolve(fcn, track=tr, layer="p2", mode="patches", memory="1G")
    parts = deconvolve(fcn, track=tr, layer="p2", options=opts)
    np.testing.assert_allclose(parts.masks, one.masks, rtol=0, atol=1e-6 * np.abs(one.masks).max())
    np.testing.assert_allclose(parts.activation_max, one.activation_max, rtol=1e-6)
    np.testing.assert_allclose(parts.activation_mean, one.activation_mean, rtol=1e-5)
    np.testing.assert_allclose(parts.fraction_active, one.fraction_active, rtol=1e-5)
    np.testing.assert_allclose(parts.activations, one.activations, rtol=0,   # batch size
                               atol=1e-6 * np.abs(one.activations).max())  # changes oneDNN's sums
    assert "batches of" in plan.describe() and "budget 40 MiB" in plan.describe()


def test_masks_that_fit_neither_the_budget_nor_the_disk_are_refused(monkeypatch, tmp_path):
    """Masks over the budget go to a memory map whose blocks are reserved first; when the
    temporary folder cannot hold them the error says so, and no file is left behind."""
    import errno
    import os

    from mirdeconv.engine.memory import mask_array

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert not isinstance(mask_array((2, 100, 8), 1 << 20), np.memmap)      # fits: in RAM

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(MemoryBudgetError, match=r"the masks need ~6 KiB, more than 1/64 of the "
                       r"memory budget of 1 KiB, and .* cannot hold them as a memory map \(No space "
                       r"left on device; .* free\)"):
        mask_array((2, 100, 8), 1 << 10)
    assert not list(tmp_path.iterdir())


def test_memory_mapped_masks_give_their_pages_back(tmp_path, monkeypatch, mapped_rss):
    """Masks over 1/64 of the budget are a memory map; after release_pages what was written
    is still there but no longer resident; arrays in RAM are left alone."""
    from mirdeconv.engine.memory import MASK_SHARE, mask_array, release_pages

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    shape = (4, 4096, 96)                                         # 6 MiB
    assert not isinstance(mask_array(shape, MASK_SHARE * (6 << 20)), np.memmap)
    m = mask_array(shape, MASK_SHARE * (6 << 20) - 1)
    assert isinstance(m, np.memmap)
    m[:] = np.arange(4096, dtype=np.float32)[None, :, None]
    assert mapped_rss(m.filename) >= 6 << 20
    release_pages(m[1:, 100:])                                   # a view: the whole map
    assert mapped_rss(m.filename) < 64 << 10
    assert float(m[3, 4095, 95]) == 4095.0 and float(m.sum()) == 4 * 96 * 4095 * 4096 / 2
    ram = np.ones(shape, np.float32)
    release_pages(ram)
    assert ram.sum() == ram.size


def test_pieces_keep_their_features_backward_passes_to_their_share():
    """A track in one piece gives the whole budget to features at once; a chunk or a batch of
    patches only a FORWARD_SHARE of it (oneDNN's pool keeps its peak for the run)."""
    from mirdeconv.engine.memory import FORWARD_SHARE, features_per_pass

    opts = mirdeconv.DeconvOptions(memory="4G")
    elems = (4 << 30) // (4 * 3 * 32)                     # 32 features fill the whole budget
    assert features_per_pass(opts, elems, 64) == 32
    assert features_per_pass(opts, elems, 64, piece=True) == 32 // FORWARD_SHARE
    fewer = 32 // FORWARD_SHARE - 1
    assert features_per_pass(opts, elems, fewer, piece=True) == fewer   # all of them at once
    assert features_per_pass(opts, elems, fewer + 2, piece=True) == -(-(fewer + 2) // 2)  # halves
    assert features_per_pass(opts, 10 * elems, 8, piece=True) == 1


@pytest.mark.parametrize("feature_axis,time_axis", [(3, 2), (1, 3), (3, 1)])
def test_activation_statistics_equal_numpys(feature_axis, time_axis):
    """Per feature: max, mean, fraction above zero, min over every axis but the feature's, and
    the maximum over time of one item, whatever the axes' order (a plain numpy loop)."""
    from types import SimpleNamespace

    from mirdeconv.engine.patches import Patching
    from mirdeconv.engine.stats import activation_stats

    rng = np.random.default_rng(feature_axis * 10 + time_axis)
    act = rng.standard_normal((1, 5, 7, 6)).astype(np.float32)
    act[..., 0, :] = np.abs(act[..., 0, :])       # some rows only positive
    info = SimpleNamespace(feature_axis=feature_axis, time_axis=time_axis, stride=(1, 1))
    got = activation_stats(act, info, Patching([0], act.shape[time_axis], act.shape[time_axis]))
    per = np.moveaxis(act[0], [feature_axis - 1, time_axis - 1], [0, 1])  # F, T, other
    n = per.shape[0]
    for f in range(n):
        a = per[f]
        assert got.max[f] == a.max() and got.min[f] == a.min()
        assert got.mean[f] == pytest.approx(a.mean(dtype=np.float64), rel=1e-6)
        assert got.fraction[f] == pytest.approx((a > 0).sum() / a.size)
        np.testing.assert_array_equal(got.over_time[f], a.max(axis=1))


@pytest.mark.parametrize("kw", [{"memory": "1M"}, {"mode": "patches", "memory": "20M"}])
def test_the_bar_counts_every_piece_to_the_end(fcn, track, capsys, kw):
    """A track in chunks, or its patches in batches: the bar (tqdm) shows every piece's
    features and ends at 100 %, not at the first piece's share."""
    import re

    deconvolve(fcn, track, 16000, layer="c2" if "mode" not in kw else "p2", progress=True, **kw)
    shown = re.findall(r"(\d+)%\|[^|]*\| (\d+)/(\d+)", capsys.readouterr().err)
    pct, done, total = map(int, shown[-1])
    assert total > 8 and (pct, done) == (100, total)
