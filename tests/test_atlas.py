"""The atlas: a collection's strongest moments per feature and per tag, on Dask, equal to
the same work done in one process."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mirdeconv.atlas import AtlasSettings, build_atlas, check_atlas, collect, load
from mirdeconv.atlas.summary import summarise
from mirdeconv.atlas.topk import merge, top_k
from mirdeconv.errors import InvalidOptionError
from mirdeconv.representations import MelSpectrogram

from .test_explain import BANDS, TAGS, build

SR = 8000
REP = MelSpectrogram(sr=SR, n_fft=256, hop_length=128, n_mels=BANDS, compression="log10")


@pytest.fixture(scope="module")
def collection(keras, tmp_path_factory):
    """A small tagger saved as .keras (+ its representation) and five tracks of 2-4 s."""
    keras.utils.set_random_seed(15)
    L = keras.layers
    net = build(keras, lambda kind, name: {"relu": L.ReLU, "elu": L.ELU}[kind](name=name))
    d = tmp_path_factory.mktemp("atlas")
    net.save(d / "net.keras")
    (d / "net.mirdeconv.json").write_text(json.dumps({
        "representation": REP.to_dict(), "input_axes": "NFTC", "labels": TAGS}))
    rng = np.random.default_rng(0)
    (d / "songs" / "b").mkdir(parents=True)
    for i in range(5):
        t = np.arange(int(SR * (2 + i % 3))) / SR
        y = 0.2 * np.sin(2 * np.pi * (100 + 150 * i) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(d / "songs" / ("b" if i % 2 else ".") / f"t{i}.wav", y.astype(np.float32), SR)
    return d


def test_collect_and_refuse(collection, tmp_path):
    tracks = collect(collection / "songs")
    assert [t.id for t in tracks] == ["b/t1.wav", "b/t3.wav", "t0.wav", "t2.wav", "t4.wav"]
    pd.DataFrame({"path": ["songs/t0.wav", "songs/b/t1.wav"]}).to_csv(collection / "list.csv")
    assert [t.id for t in collect(collection / "list.csv")] == ["songs/b/t1.wav", "songs/t0.wav"]
    with pytest.raises(InvalidOptionError, match="holds no audio"):
        collect(tmp_path)
    (tmp_path / "bad.csv").write_text("file\nx.wav\n")
    with pytest.raises(InvalidOptionError, match="no 'path' column"):
        collect(tmp_path / "bad.csv")


def test_top_k_merge_is_order_free():
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({"kind": "feature", "layer": "c1", "unit": rng.integers(0, 3, 60),
                         "activation": rng.integers(0, 5, 60).astype(float),   # many ties
                         "track": [f"t{i % 7}" for i in range(60)],
                         "start": rng.uniform(0, 10, 60).round(2), "end": 0.0})
    parts = [rows.iloc[i:i + 10] for i in range(0, 60, 10)]
    left = parts[0]
    for p in parts[1:]:
        left = merge(left, p, 4)
    right = parts[-1]
    for p in parts[-2::-1]:
        right = merge(p, right, 4)
    pd.testing.assert_frame_equal(left, right)
    pd.testing.assert_frame_equal(left, top_k(rows, 4))
    assert (left.groupby("unit").size() == 4).all()
    assert (left.groupby("unit")["activation"].apply(lambda a: a.is_monotonic_decreasing)).all()


def test_summary_winners_are_peaks_an_excerpt_apart(collection):
    import mirdeconv

    model = mirdeconv.load_model(collection / "net.keras")
    y, sr = mirdeconv.audio.load(collection / "songs" / "t2.wav")
    t = summarise(model, y, sr, track="t2", layers=["c1"], k=3, excerpt=0.5)
    feats = t[t.kind == "feature"]
    assert set(feats.unit) <= set(range(4)) and (feats.groupby("unit").size() <= 3).all()
    for _, g in feats.groupby("unit"):
        centres = ((g.start + g.end) / 2).to_numpy()
        assert np.all(np.abs(centres[:, None] - centres[None]) + np.eye(len(g)) >= 0.5 - 1e-6)
    assert ((feats.end - feats.start) <= 0.5 + 1e-6).all() and (feats.start >= 0).all()
    # the best winner of each feature is its map's maximum over the track
    res = mirdeconv.deconvolve(model, y, sr, layer="c1", features=[0, 1, 2, 3])
    best = feats[feats["rank"] == 0].set_index("unit")["activation"]
    np.testing.assert_allclose(best.to_numpy(), res.activation_max[best.index], rtol=1e-5)
    tags = t[t.kind == "tag"]
    assert sorted(tags.unit.unique()) == [0, 1, 2] and ((tags.activation > 0) & (tags.activation < 1)).all()


@pytest.mark.slow
def test_local_cluster_equals_one_process(collection, tmp_path):
    """Two worker processes, a tree of merges and the winners' files in a second pass give
    the single process's atlas: the same table row for row, the same files byte for byte."""
    tracks = collect(collection / "songs")
    settings = AtlasSettings(model=str(collection / "net.keras"), layers=("c1", "c2"), k=2,
                             excerpt=0.5)
    one = build_atlas(tracks, settings, scheduler="synchronous", out=tmp_path / "one")
    two = build_atlas(tracks, settings, n_workers=2, out=tmp_path / "two")
    pd.testing.assert_frame_equal(one, two)
    assert set(one.track) <= {t.id for t in tracks} and len(one) > 0
    assert (one.groupby(["kind", "layer", "unit"]).size() <= 2).all()
    pd.testing.assert_frame_equal(load(tmp_path / "two"), two, check_dtype=False)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.*"))
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.*"))
    for f in files:
        if f.suffix == ".wav":
            assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    feats = one[one.kind == "feature"]
    assert (feats.error == "").all() and feats.png_path.str.endswith(".png").all()
    row = feats.iloc[0]
    clip, sr = sf.read(tmp_path / "one" / row.excerpt_path)
    assert sr == SR and len(clip) == round((row.end - row.start) * SR)
    y, _ = sf.read(collection / "songs" / row.track)
    np.testing.assert_allclose(clip, y[round(row.start * SR):round(row.end * SR)], atol=1e-4)
    tags = one[one.kind == "tag"]
    assert tags.excerpt_path.str.match(r"files/[0-9a-f]{12}/tags/").all()
    assert (tags.audio_path == "").all()


@pytest.mark.slow
def test_cli_atlas(collection, tmp_path, capsys):
    from mirdeconv.cli import main

    code = main(["atlas", str(collection / "net.keras"), str(collection / "songs"), "--layers",
                 "c2", "--top-k", "1", "--excerpt", "0.5", "--scheduler", "synchronous",
                 "--out", str(tmp_path / "a")])
    out = capsys.readouterr().out
    table = load(tmp_path / "a")
    n = table.groupby(["kind", "layer", "unit"]).ngroups      # c2's 6 features (less the
    assert code == 0 and 4 <= n <= 9                         # dead ones) and the 3 tags
    assert f"5 tracks: {n} features and tags, {len(table)} winners" in out
    assert not (tmp_path / "a" / "dissection.parquet").exists()      # no annotations
    assert sorted(table.kind.unique()) == ["feature", "tag"] and (table["rank"] == 0).all()
    assert main(["atlas", str(collection / "net.keras"), str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "b")]) == 2
    assert "neither a folder of audio" in capsys.readouterr().err
    assert main(["atlas", "--check", str(tmp_path / "a")]) == 0
    assert "every file the atlas lists is there" in capsys.readouterr().out
    gone = table[table.kind == "feature"].png_path.iloc[0]
    (tmp_path / "a" / gone).unlink()
    assert main(["atlas", "--check", str(tmp_path / "a")]) == 1
    assert f"missing file: {gone}" in capsys.readouterr().out
    assert main(["atlas", "--check", str(tmp_path / "nothing")]) == 1


@pytest.mark.slow
def test_rerun_after_adding_tracks_equals_a_fresh_run(collection, tmp_path):
    """Three tracks, then all five into the same folder: the old tracks' summaries are read,
    not recomputed, and the atlas equals a fresh run on the five."""
    import shutil

    songs = tmp_path / "songs"
    shutil.copytree(collection / "songs", songs)
    later = [songs / "t4.wav", songs / "b" / "t3.wav"]
    for p in later:
        p.rename(p.with_suffix(".later"))
    settings = AtlasSettings(model=str(collection / "net.keras"), layers=("c1",), k=2, excerpt=0.5)
    build_atlas(collect(songs), settings, scheduler="synchronous", out=tmp_path / "atlas")
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "atlas" / "summaries").rglob("*.parquet")}
    assert len(kept) == 3
    for p in later:
        p.with_suffix(".later").rename(p)
    again = build_atlas(collect(songs), settings, scheduler="synchronous", out=tmp_path / "atlas")
    now = {p: p.stat().st_mtime_ns for p in (tmp_path / "atlas" / "summaries").rglob("*.parquet")}
    assert len(now) == 5 and all(now[p] == t for p, t in kept.items())
    fresh = build_atlas(collect(songs), settings, scheduler="synchronous", out=tmp_path / "fresh")
    pd.testing.assert_frame_equal(again, fresh)
    # the first run's winners' files went with its table; nothing unlisted is left
    assert len(list((tmp_path / "atlas" / "files").iterdir())) == 1
    assert check_atlas(tmp_path / "atlas") == {"missing table": [], "missing file": [],
                                               "unreadable summary": [], "unlisted file": []}
    # other settings (another k) do not read these summaries
    other = AtlasSettings(model=str(collection / "net.keras"), layers=("c1",), k=1, excerpt=0.5)
    build_atlas(collect(songs), other, scheduler="synchronous", out=tmp_path / "atlas")
    assert len(list((tmp_path / "atlas" / "summaries").iterdir())) == 2


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_real_cluster_and_a_killed_worker(collection, tmp_path):
    """A `dask scheduler` and two `dask worker` processes on loopback run the job through its
    address; one worker SIGKILLed in the middle: the atlas is still complete and equal to
    the one computed in one process."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import threading
    import time

    songs = tmp_path / "songs"
    for i in range(8):                                 # 40 tracks: work for the workers
        shutil.copytree(collection / "songs", songs / str(i))
    tracks = collect(songs)
    settings = AtlasSettings(model=str(collection / "net.keras"), layers=("c1", "c2"), k=2,
                             excerpt=0.5)
    want = build_atlas(tracks, settings, scheduler="synchronous")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    procs = [subprocess.Popen([os.path.join(bin_dir, "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        for name in ("w0", "w1"):
            procs.append(subprocess.Popen(
                [os.path.join(bin_dir, "dask"), "worker", addr, "--nthreads", "1", "--no-nanny",
                 "--host", "127.0.0.1", "--name", name], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))
        from distributed import Client

        with Client(addr, timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
        from mirdeconv.cli import main  # the command's --scheduler, then the API's

        assert main(["atlas", str(collection / "net.keras"), str(songs), "--layers", "c1,c2",
                     "--top-k", "2", "--excerpt", "0.5", "--scheduler", addr,
                     "--out", str(tmp_path / "cli")]) == 0
        cli = load(tmp_path / "cli")[want.columns]
        pd.testing.assert_frame_equal(cli, want, check_dtype=False)
        pd.testing.assert_frame_equal(build_atlas(tracks, settings, scheduler=addr), want)
        # again, with a worker killed while the job runs
        from mirdeconv.atlas import run as atlas_run

        times = {}

        def kill():            # as soon as the second worker is busy with the job's tasks
            with Client(addr, timeout=60) as watcher:
                w1 = next(a for a, w in watcher.scheduler_info()["workers"].items()
                          if w["name"] == "w1")
                deadline = time.monotonic() + 120
                while not watcher.processing().get(w1) and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.killpg(procs[1].pid, signal.SIGKILL)
                times["kill"] = time.monotonic()

        killer = threading.Thread(target=kill)
        killer.start()
        got = atlas_run.build_atlas(tracks, settings, scheduler=addr)
        times["done"] = time.monotonic()
        killer.join()
        assert procs[1].wait(timeout=10) == -signal.SIGKILL
        assert times["kill"] < times["done"]          # the kill came while the job ran
        pd.testing.assert_frame_equal(got, want)
    finally:
        for p in procs[::-1]:                     # workers, then the scheduler
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


def test_tag_winners_do_not_overlap(collection):
    import mirdeconv

    model = mirdeconv.load_model(collection / "net.keras")
    y, sr = mirdeconv.audio.load(collection / "songs" / "t4.wav")          # 3 s, patches of 0.38
    t = summarise(model, y, sr, track="t4", layers=[], k=3, excerpt=0.5)
    patch = 24 * REP.seconds_per_frame
    for _, g in t[t.kind == "tag"].groupby("unit"):
        s = np.sort(g.start.to_numpy())
        assert len(g) >= 1 and np.all(np.diff(s) >= patch - 1e-6)
        assert np.allclose(g.end - g.start, np.minimum(patch, len(y) / sr - g.start))


def test_app_reads_only_files_inside_the_atlas(collection, tmp_path, monkeypatch):
    from mirdeconv.app import atlas as app_atlas

    assert app_atlas.atlas_folders(tmp_path) == {}
    monkeypatch.delenv("MIRDECONV_ATLAS_DIR", raising=False)
    assert app_atlas.atlas_folders() == {}
    (tmp_path / "one").mkdir()
    pd.DataFrame({"kind": ["feature"]}).to_parquet(tmp_path / "one" / "atlas.parquet")
    (tmp_path / "secret.txt").write_text("not yours")
    (tmp_path / "one" / "x.wav").write_bytes(b"RIFF")
    monkeypatch.setenv("MIRDECONV_ATLAS_DIR", str(tmp_path))
    folders = app_atlas.atlas_folders()
    assert folders == {"one": tmp_path / "one"}
    assert app_atlas.atlas_file(folders["one"], "x.wav") == b"RIFF"
    assert app_atlas.atlas_file(folders["one"], "../secret.txt") is None
    assert app_atlas.atlas_file(folders["one"], str(tmp_path / "secret.txt")) is None
    assert app_atlas.atlas_file(folders["one"], "") is None


@pytest.mark.slow
def test_app_atlas_view(collection, tmp_path, monkeypatch, zoo_cache):
    """The Atlas tab opens the operator's atlas: pick a layer and a feature, hear its
    excerpts and auralisations, see its pictures; then a tag, by its label."""
    from streamlit.testing.v1 import AppTest

    from .conftest import ROOT

    settings = AtlasSettings(model=str(collection / "net.keras"), layers=("c2",), k=2,
                             excerpt=0.5)
    table = build_atlas(collect(collection / "songs"), settings, scheduler="synchronous",
                        out=tmp_path / "atlases" / "small")
    monkeypatch.setenv("MIRDECONV_ATLAS_DIR", str(tmp_path / "atlases"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600).run()
    assert not at.exception and at.selectbox(key="atlas").value == "small"
    feature = int(at.selectbox(key="atlas_unit").value)
    rows = table[(table.kind == "feature") & (table.unit == feature)]
    assert any(c.value.startswith(f"small: {len(rows)} strongest moments of feature {feature} "
                                  "of c2 across 5 tracks") for c in at.caption)
    listed = [m.value for m in at.markdown if m.value.startswith("**1.**")]
    best = rows[rows["rank"] == 0].iloc[0]
    from mirdeconv.app.atlas_view import _plain

    assert listed and listed[0].startswith(f"**1.** {_plain(best.track)}, {best.start:.1f}")
    assert sum(c.value == "the feature's auralisation on it" for c in at.caption) == len(rows)
    described = at.dataframe[-1].value                       # its descriptors over its winners
    assert int(described["winners described"].iloc[0]) == len(rows) and "onset F" in described
    at.radio(key="atlas_kind").set_value("tag").run()
    assert not at.exception and at.selectbox(key="atlas_unit").options[:3] == TAGS


def _planted(keras, kernel, name, folder):
    """A one-feature net on Choi's STFT (the analysis tests' planted nets), saved as .keras
    with its representation beside it."""
    from mirdeconv.representations import choi2016_stft

    rep = choi2016_stft()
    L = keras.layers
    inp = L.Input((rep.n_bands, None, 1), name="stft")
    conv = L.Conv2D(1, kernel.shape[:2], activation="relu", name=name,
                    padding="same" if kernel.shape[0] < rep.n_bands else "valid")
    out = conv(inp)
    conv.set_weights([kernel.astype(np.float32), np.zeros(1, np.float32)])
    path = folder / f"{name}.keras"
    keras.Model(inp, out).save(path)
    path.with_suffix(".mirdeconv.json").write_text(json.dumps(
        {"representation": rep.to_dict(), "input_axes": "NFTC"}))
    return str(path), rep


@pytest.mark.slow
def test_planted_nets_get_their_concept_from_annotated_probes(keras, tmp_path):
    """The probe set (chords, notes, onsets) written with its JAMS annotations: the onset
    detector (a vertical edge in time) is labelled "onset", the low-band net (the bins below
    200 Hz) "low note".  (With the drum probes in the set both are labelled "drum hit",
    IoU 0.26 and 0.17: a kick is a loud, low onset, and IoU favours the smaller concept.)"""
    from mirdeconv import probes

    clips = probes.probe_set(families=("chords", "notes", "onsets"), keys=["Eb2", "A3"],
                             instruments=["piano"], chord_sets=["major_minor"])
    probes.write_probes(clips, tmp_path / "probes", annotations="jams")
    tracks = collect(tmp_path / "probes")
    assert len(tracks) == len(clips)
    edge = np.zeros((3, 3, 1, 1))
    edge[:, 0], edge[:, 2] = -1.0, 1.0
    onset_net, rep = _planted(keras, edge, "edge", tmp_path)
    freqs = np.arange(rep.n_bands) * rep.sr / rep.n_fft
    low_net, _ = _planted(keras, (freqs < 200).astype(float).reshape(-1, 1, 1, 1), "lowpass",
                          tmp_path)
    labels, feats = {}, {}
    for path, layer in ((onset_net, "edge"), (low_net, "lowpass")):
        settings = AtlasSettings(model=path, layers=(layer,), k=1, excerpt=0.5, tags=False)
        table = build_atlas(tracks, settings, scheduler="synchronous", out=tmp_path / layer)
        d = pd.read_parquet(tmp_path / layer / "dissection.parquet")
        labels[layer] = d.iloc[0].label, d.set_index("concept").iou.to_dict()
        assert table.label.iloc[0] == labels[layer][0]
        feats[layer] = pd.read_parquet(tmp_path / layer / "features.parquet").iloc[0]
    assert labels["edge"][0] == "onset", labels
    assert labels["lowpass"][0] == "low note", labels
    # the analysis' descriptors of the winners' deconvolutions, per feature
    assert feats["lowpass"].n == 1 and feats["lowpass"].low_share > 0.95
    assert feats["edge"].n == 1 and np.isfinite(feats["edge"].onset_f)


def test_a_winner_lies_where_its_event_is(keras):
    """A click at a known time through "same"-padded convolutions and two pools (stride 16
    frames): the deep feature's best winner is centred on the click, within half a stride."""
    import mirdeconv
    from mirdeconv.representations import choi2016_stft

    rep = choi2016_stft()
    L = keras.layers
    inp = L.Input((rep.n_bands, None, 1))
    x = L.Conv2D(1, (rep.n_bands, 1), activation="relu", name="all")(inp)
    x = L.MaxPooling2D((1, 4), name="p1")(L.Conv2D(1, (1, 9), padding="same", name="c1")(x))
    x = L.MaxPooling2D((1, 4), name="p2")(L.Conv2D(1, (1, 9), padding="same", name="c2")(x))
    net = keras.Model(inp, x)
    for name in ("all", "c1", "c2"):
        w = net.get_layer(name).get_weights()
        net.get_layer(name).set_weights([np.ones_like(w[0]), np.zeros_like(w[1])])
    model = mirdeconv.load_model(net, representation=rep, input_axes="NFTC")
    y = np.zeros(rep.sr * 20, np.float32)
    click = 12.3
    y[int(click * rep.sr):int(click * rep.sr) + 64] = 0.8
    t = summarise(model, y, rep.sr, track="click", layers=["p2"], k=1, excerpt=2.0, tags=False)
    best = t.iloc[0]
    stride = 16 * rep.seconds_per_frame
    # measured: 0.06 s off; centred on its receptive field instead (56 frames), 0.24 s
    assert abs((best.start + best.end) / 2 - click) <= stride / 2, (best.start, best.end)


def test_dissection_thresholds_and_labels():
    from mirdeconv.atlas.dissect import EDGES, labels_table, thresholds

    values = -np.linspace(1.0, 2.0, 1000)                     # a layer that stays below zero
    hist = {"bn": np.histogram(values, EDGES)[0][None].astype(np.int64)}
    thr = thresholds(hist, 0.95)["bn"][0]
    assert np.quantile(values, 0.95) <= thr < 0 and thr == pytest.approx(np.quantile(values, 0.95),
                                                                         rel=0.06)
    big = {"x": np.histogram([1e9, 2e9], EDGES)[0][None].astype(np.int64)}
    assert np.isfinite(thresholds(big, 0.5)["x"][0])           # nothing falls off the end
    counts = {("c", "onset"): np.array([[3, 0], [10, 8]]), ("c", "chord"): np.array([[1, 0], [4, 8]])}
    t = labels_table(counts)
    f0, f1 = t[t.unit == 0], t[t.unit == 1]
    assert set(f0.label) == {"onset"} and f0.label_iou.iloc[0] == pytest.approx(0.3)
    assert f1.label.isna().all()                              # no concept overlaps it: no label


def test_winners_from_bounded_candidates_equal_those_from_every_unit(collection):
    """The summary keeps only each feature's k (2 g + 1) strongest units, batch by batch;
    greedy suppression over every unit of the track picks the same winners."""
    import mirdeconv
    from mirdeconv.atlas import summary

    model = mirdeconv.load_model(collection / "net.keras")
    rng = np.random.default_rng(5)
    y = (0.3 * rng.standard_normal(SR * 20)).astype(np.float32)
    info = model.layer("c1")
    frames = model.representation.prepare(y, SR).frames
    batches = list(summary.moment_batches(model, frames, info))
    assert len(batches) > 3                                   # several batches of patches
    times = np.concatenate([t for t, _ in batches])
    values = np.concatenate([v for _, v in batches], axis=1)
    spf = model.representation.seconds_per_frame
    k, excerpt = 3, 0.5
    t = summarise(model, y, SR, track="n", layers=["c1"], k=k, excerpt=excerpt, tags=False)
    for f in range(info.n_features):
        order = np.argsort(times, kind="stable")
        want = [times[order][i] * spf for i in summary._apart(times[order] * spf,
                                                              values[f][order], k, excerpt)]
        got = t[t.unit == f].sort_values("rank")
        np.testing.assert_allclose(got.activation, values[f][order][[
            int(np.argmin(np.abs(times[order] * spf - w))) for w in want]], rtol=1e-6)


def test_bad_members_are_recorded_and_the_atlas_built_from_the_rest(collection, tmp_path, capsys):
    """A text file named .ogg and a .wav link to a text file outside the source: each is
    recorded with why, the summary and the exit code (1) say so, and the atlas holds the
    five good tracks, as a run on them alone does."""
    import shutil

    from mirdeconv.cli import main

    songs = tmp_path / "songs"
    shutil.copytree(collection / "songs", songs)
    (songs / "fake.ogg").write_text("not audio at all")
    (tmp_path / "notes.txt").write_text("a text file outside the source")
    (songs / "b" / "link.wav").symlink_to(tmp_path / "notes.txt")
    settings = AtlasSettings(model=str(collection / "net.keras"), layers=("c2",), k=1, excerpt=0.5)
    table = build_atlas(collect(songs), settings, scheduler="synchronous", out=tmp_path / "a")
    bad = {f["track"]: f["error"] for f in table.attrs["failures"]}
    assert sorted(bad) == ["b/link.wav", "fake.ogg"] and all("cannot decode" in e or "not" in e
                                                             for e in bad.values())
    good = build_atlas(collect(collection / "songs"), settings, scheduler="synchronous")
    pd.testing.assert_frame_equal(table[good.columns].reset_index(drop=True), good)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["tracks"] == 7 and summary["exit_code"] == 1 and len(summary["failures"]) == 2
    code = main(["atlas", str(collection / "net.keras"), str(songs), "--layers", "c2", "--top-k", "1",
                 "--excerpt", "0.5", "--scheduler", "synchronous", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 1 and "failed: fake.ogg:" in err and "failed: b/link.wav:" in err
    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    (only_bad / "x.mp3").write_bytes(b"\x00" * 4000)
    assert main(["atlas", str(collection / "net.keras"), str(only_bad), "--scheduler", "synchronous",
                 "--out", str(tmp_path / "c")]) == 2
