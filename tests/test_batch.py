"""The batch job: files, grid, index, failures, resume, interruption, disk checks, jobs."""

from __future__ import annotations

import json
import re
from collections import namedtuple

import numpy as np
import pytest
import soundfile as sf

from mirdeconv import batch as batch_mod
from mirdeconv.batch import BatchSettings, load_index, run_batch
from mirdeconv.cli import main
from mirdeconv.errors import OutputError
from mirdeconv.loading import sidecar_path
from mirdeconv.options import DeconvOptions
from mirdeconv.representations import LinearSpectrogram

from .conftest import tone_track

REP = LinearSpectrogram(sr=8000, n_fft=128, hop_length=64)        # 65 bins


@pytest.fixture(scope="module")
def setup(tmp_path_factory, keras):
    d = tmp_path_factory.mktemp("batch")
    keras.utils.set_random_seed(9)
    L = keras.layers
    inp = keras.Input((65, 50, 1))
    x = L.MaxPooling2D(2, name="p1")(L.Conv2D(4, 3, padding="same", activation="relu",
                                              name="c1")(inp))
    x = L.MaxPooling2D(2, name="p2")(L.Conv2D(3, 3, padding="same", activation="relu",
                                              name="c2")(x))
    keras.Model(inp, x).save(d / "net.keras")
    sidecar_path(d / "net.keras").write_text(json.dumps({"representation": REP.to_dict()}))
    sf.write(d / "a.wav", tone_track(16000, 2.0, seed=1), 16000)
    sf.write(d / "b.flac", tone_track(8000, 1.5, seed=2), 8000)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return d


SETTINGS = BatchSettings(layers=("p1", "p2"))


def test_batch_writes_audio_grids_and_index(setup, tmp_path):
    d = setup
    out = tmp_path / "out"
    s = run_batch(d / "net.keras", [d / "a.wav", d / "broken.wav", d / "b.flac"], out, SETTINGS,
                  progress=False)
    assert (s.n_tracks, s.n_failed_tracks, s.n_layers_done) == (3, 1, 4)
    idx = load_index(out)
    ok = idx[idx.status == "ok"]
    assert len(ok) == 2 * (4 + 3)                        # tracks x (p1: 4 + p2: 3 features)
    err = idx[idx.status == "error"]
    assert len(err) == 1 and "broken.wav" in err.track_path.iloc[0]
    assert "cannot decode broken.wav" in err.error.iloc[0]
    for row in ok.itertuples():
        y, sr = sf.read(out / row.audio_path)
        assert sr == row.sr and len(y) == round(row.duration * sr)
        assert (out / row.grid_path).is_file()
    a = ok[ok.track == "a"]
    assert set(a.sr) == {16000} and set(ok[ok.track == "b"].sr) == {8000}  # the track's own rate
    assert set(ok.model_graph_sha256) == {s_ for s_ in ok.model_graph_sha256} and \
        len(ok.model_graph_sha256.iloc[0]) == 64
    assert set(ok.method) == {"deconvnet"} and json.loads(ok.representation.iloc[0])["n_fft"] == 128
    assert (ok.dead == (ok.activation_max == 0)).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed_tracks"] == 1 and "broken.wav" in summary["failures"][0]["track"]
    assert not list(out.rglob("*.tmp"))


def test_resume_skips_what_is_complete(setup, tmp_path):
    d = setup
    out = tmp_path / "out"
    run_batch(d / "net.keras", [d / "a.wav", d / "b.flac"], out, SETTINGS, progress=False)
    again = run_batch(d / "net.keras", [d / "a.wav", d / "b.flac"], out, SETTINGS,
                      progress=False)
    assert (again.n_layers_done, again.n_layers_skipped, again.n_files) == (0, 4, 0)
    assert len(load_index(out)) == 14
    (out / "a" / "p2" / "f001.wav").unlink()             # a lost file: that layer is redone
    third = run_batch(d / "net.keras", [d / "a.wav", d / "b.flac"], out, SETTINGS,
                      progress=False)
    assert (third.n_layers_done, third.n_layers_skipped) == (1, 3)
    assert (out / "a" / "p2" / "f001.wav").is_file()
    # other settings are other work
    guided = BatchSettings(layers=("p1",), deconv=DeconvOptions(method="guided"))
    other = run_batch(d / "net.keras", [d / "a.wav"], out, guided, progress=False)
    assert other.n_layers_done == 1


def test_an_interrupted_run_loses_nothing_written(setup, tmp_path, monkeypatch):
    d = setup
    out = tmp_path / "out"
    real = batch_mod._Worker._finish
    calls = {"n": 0}

    def crash_on_third(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(batch_mod._Worker, "_finish", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_batch(d / "net.keras", [d / "a.wav", d / "b.flac"], out, SETTINGS, progress=False)
    monkeypatch.setattr(batch_mod._Worker, "_finish", real)
    assert not list(out.rglob("*.tmp"))
    for p in out.rglob("*.wav"):                         # every file there is whole
        assert sf.info(p).frames > 0
    done = run_batch(d / "net.keras", [d / "a.wav", d / "b.flac"], out, SETTINGS,
                     progress=False)
    assert done.n_layers_skipped == 2 and done.n_layers_done == 2
    assert len(load_index(out)) == 14


def test_unwritable_output_fails_early(setup, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write to output folder"):
        run_batch(setup / "net.keras", [setup / "a.wav"], blocker / "out", SETTINGS,
                  progress=False)


def test_full_disk_fails_before_writing(setup, tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(batch_mod.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 10000))
    out = tmp_path / "out"
    msg = r"not enough disk space.*writes about 0\.[1-9] MB and 0\.0 MB are free"
    with pytest.raises(OutputError, match=msg):
        run_batch(setup / "net.keras", [setup / "a.wav"], out, SETTINGS, progress=False)
    assert not list(out.rglob("*.wav"))


def test_write_error_mid_job_is_clear(setup, tmp_path, monkeypatch):
    import errno

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("soundfile.SoundFile.write", no_space)
    with pytest.raises(OutputError, match="No space left on device"):
        run_batch(setup / "net.keras", [setup / "a.wav"], tmp_path / "out", SETTINGS,
                  progress=False)


@pytest.mark.slow
def test_jobs_give_the_same_index(setup, tmp_path):
    d = setup
    tracks = [d / "a.wav", d / "b.flac", d / "broken.wav"]
    run_batch(d / "net.keras", tracks, tmp_path / "one", SETTINGS, progress=False)
    s = run_batch(d / "net.keras", tracks, tmp_path / "two", SETTINGS, jobs=2, progress=False)
    assert s.n_layers_done == 4 and s.n_failed_tracks == 1
    key = ["track", "layer", "feature"]
    one = load_index(tmp_path / "one").sort_values(key, na_position="first")
    two = load_index(tmp_path / "two").sort_values(key, na_position="first")
    assert one[key + ["status", "dead"]].astype(str).values.tolist() == \
        two[key + ["status", "dead"]].astype(str).values.tolist()
    np.testing.assert_allclose(one.activation_max.fillna(-1), two.activation_max.fillna(-1),
                               rtol=1e-5)


def test_cli_auralise(setup, tmp_path, capsys):
    d = setup
    rc = main(["auralise", str(d / "net.keras"), str(d / "a.wav"), str(d / "broken.wav"),
               "--layers", "p2", "--features", "0-1", "--format", "flac", "--out",
               str(tmp_path / "o")])
    cap = capsys.readouterr()
    assert rc == 1                                       # one of the two tracks failed
    assert "2 tracks: 1 layer auralised" in cap.out and "failed:" in cap.err
    assert "1 failure (exit code 1" in cap.err
    # each (track, layer)'s memory plan before its work, the one deconvolve makes (a 2-s
    # track is shorter than the probe: one piece), under the default budget
    assert re.search(r"a / p2: memory: one piece, not measured \(no longer than the probe\) "
                     r"\+ \d+ KiB of masks; budget \d", cap.err), cap.err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["exit_code"] == 1
    assert sorted(p.name for p in (tmp_path / "o" / "a" / "p2").iterdir()) == \
        ["_done.json", "f000.flac", "f001.flac"]
    assert (tmp_path / "o" / "a" / "p2.png").is_file()


def test_index_has_descriptors_and_labels(setup, tmp_path):
    """Every ok row carries the feature's descriptors, equal to mirdeconv.analysis on the
    same track; annotations beside a track are used, otherwise librosa's onsets."""
    import shutil

    from mirdeconv import analysis
    from mirdeconv.loading import load_model
    from mirdeconv.probes import probe_set

    d = setup
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    shutil.copy(d / "a.wav", tracks / "a.wav")
    drums = probe_set(sr=8000, families=("drums",), rhythms=["rock"])[0]
    sf.write(tracks / "rock.wav", drums.audio, 8000)
    with open(tracks / "rock.jams", "w") as fh:
        drums.to_jams().save(fh, fmt="jams")
    out = tmp_path / "out"
    run_batch(d / "net.keras", [tracks / "a.wav", tracks / "rock.wav"], out, SETTINGS,
              progress=False)
    idx = load_index(out)
    assert set(batch_mod.DESCRIPTOR_COLUMNS) <= set(idx.columns)
    assert set(idx[idx.track == "a"].onsets_from) == {"librosa"}
    assert set(idx[idx.track == "rock"].onsets_from) == {"annotations"}
    assert idx.label.map(lambda s: isinstance(s, str) and len(s) > 0).all()
    model = load_model(d / "net.keras")
    res = analysis.analyse(model, [tracks / "rock.wav"], layers=["p2"])   # reads rock.jams
    want = res.per_track.set_index("feature")
    got = idx[(idx.track == "rock") & (idx.layer == "p2")].set_index("feature")
    for col in ("onset_f", "percussive_share", "centroid_hz", "sdr_harmonic", "attack_lift"):
        np.testing.assert_allclose(got[col].to_numpy(float),
                                   want.loc[got.index, col].to_numpy(float), rtol=1e-5, atol=1e-6)
    out2 = tmp_path / "plain"
    run_batch(d / "net.keras", [tracks / "a.wav"], out2,
              BatchSettings(layers=("p1",), analyse=False), progress=False)
    assert load_index(out2).onset_f.isna().all()


def test_exit_codes_all_done_and_nothing_done(setup, tmp_path, capsys):
    """0 when every track is done (again: skipped counts as done); 2 when every track fails,
    in the return code and in summary.json."""
    d = setup
    args = ["--layers", "p2", "--features", "0-1", "--no-analysis"]
    assert main(["auralise", str(d / "net.keras"), str(d / "a.wav"), *args,
                 "--out", str(tmp_path / "ok")]) == 0
    assert main(["auralise", str(d / "net.keras"), str(d / "a.wav"), *args,
                 "--out", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    assert main(["auralise", str(d / "net.keras"), str(d / "broken.wav"), *args,
                 "--out", str(tmp_path / "bad")]) == 2
    assert "nothing could be done (exit code 2" in capsys.readouterr().err
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["exit_code"] == 2 and summary["failed_tracks"] == 1


def test_a_truncated_track_is_refused_or_flagged(setup, tmp_path):
    """An OGG cut in half is refused (its last page is incomplete); with allow_truncated it
    is processed and flagged in the index."""
    from dataclasses import replace

    y = 0.3 * np.random.default_rng(0).standard_normal(8000 * 20)    # noise: most bytes are audio
    sf.write(tmp_path / "whole.ogg", y.astype(np.float32), 8000)
    data = (tmp_path / "whole.ogg").read_bytes()
    (tmp_path / "half.ogg").write_bytes(data[:len(data) // 2])
    tracks = [tmp_path / "whole.ogg", tmp_path / "half.ogg"]
    quick = replace(SETTINGS, analyse=False)
    s = run_batch(setup / "net.keras", tracks, tmp_path / "o1", quick, progress=False)
    assert s.exit_code == 1 and "truncated or damaged" in s.failures[0]["error"]
    s = run_batch(setup / "net.keras", tracks, tmp_path / "o2",
                  replace(quick, allow_truncated=True), progress=False)
    assert s.exit_code == 0
    idx = load_index(tmp_path / "o2")
    flags = idx.groupby("track")["truncated"].first()
    assert flags["whole"] == "" and "last Ogg page is cut off" in flags["half"]


def test_runs_into_one_folder_merge(setup, tmp_path, capsys):
    """Run A on track a, then run B on tracks b and a with other features: the index holds
    both tracks, a's rows are B's (its old files gone with them), no duplicates, no orphans."""
    d, out = setup, tmp_path / "o"
    quick = BatchSettings(layers=("p1", "p2"), features="0-1", analyse=False)
    run_batch(d / "net.keras", [d / "a.wav"], out, quick, progress=False)
    assert len(load_index(out)) == 4
    from dataclasses import replace

    run_batch(d / "net.keras", [d / "b.flac", d / "a.wav"], out, replace(quick, features="2"),
              progress=False)
    idx = load_index(out)
    assert sorted(idx.groupby("track").size().items()) == [("a", 2), ("b", 2)]
    assert set(idx.feature) == {2}
    from mirdeconv.runstore import check_index

    assert check_index(out) == {"missing": [], "unlisted": [], "duplicates": []}
    assert main(["index", str(out), "--check"]) == 0
    assert "every file listed" in capsys.readouterr().out


def test_index_check_and_repair(setup, tmp_path, capsys):
    d, out = setup, tmp_path / "o"
    run_batch(d / "net.keras", [d / "a.wav", d / "broken.wav"], out,
              BatchSettings(layers=("p2",), features="0-2", analyse=False), progress=False)
    (out / "a" / "p2" / "f001.wav").unlink()                       # a file lost
    (out / "a" / "p2" / "f009.wav").write_bytes(b"x")              # a stray file
    assert main(["index", str(out)]) == 1
    text = capsys.readouterr().out
    assert "missing: a/p2/f001.wav" in text and "unlisted: a/p2/f009.wav" in text
    (out / "a" / "p2" / "f009.wav").unlink()
    assert main(["index", str(out), "--repair"]) == 0
    assert "rebuilt from the files, 2 rows" in capsys.readouterr().out
    assert sorted(load_index(out).feature) == [0, 2]
    assert main(["index", str(tmp_path)]) == 2
    assert "is not a batch output folder" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_at_once_share_a_folder(setup, tmp_path):
    """Two `mirdeconv auralise` processes on the same tracks into one folder, started
    together: both succeed, every (track, layer) is done once (claims: the second waits and
    skips), and the index lists every file once."""
    import subprocess
    import sys

    d, out = setup, tmp_path / "o"
    cmd = [sys.executable, "-m", "mirdeconv.cli", "auralise", str(d / "net.keras"),
           str(d / "a.wav"), str(d / "b.flac"), "--layers", "p1,p2", "--features", "all",
           "--no-analysis", "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs

    done = [int(re.search(r"(\d+) layers? auralised", o).group(1)) for o, _ in outs]
    assert sum(done) == 4, outs                        # 2 tracks x 2 layers, each once
    from mirdeconv.runstore import check_index

    idx = load_index(out)
    assert len(idx) == 2 * (4 + 3) and not idx.duplicated(["track", "layer", "feature"]).any()
    assert check_index(out) == {"missing": [], "unlisted": [], "duplicates": []}


def test_the_engine_gets_the_budget_less_what_the_track_holds(setup, tmp_path):
    """One budget for the job: the engine's share is the budget less the track's arrays, its
    analysis context and the layer's masks (the STFT the context shares counted once), never
    below an eighth of it."""
    import dataclasses as dc

    import mirdeconv
    from mirdeconv.analysis import Reference, TrackContext
    from mirdeconv.batch import _nbytes, _Worker

    model = mirdeconv.load_model(setup / "net.keras")
    y, sr = sf.read(setup / "a.wav", dtype="float32")
    track = model.representation.prepare(y, sr)
    ctx = TrackContext(track, Reference.detect(y, sr))
    assert ctx.X is track.stft or np.shares_memory(ctx.X, track.stft)
    shared = _nbytes(track, ctx)
    assert shared == _nbytes(track) + _nbytes(ctx) - track.stft.nbytes
    settings = dc.replace(SETTINGS, deconv=mirdeconv.DeconvOptions(memory="64M"))
    worker = _Worker(model, settings, tmp_path)
    masks = 4 * 4 * track.n_frames * model.representation.n_bands          # p1: 4 features
    assert worker._engine_options("p1", track, ctx).budget == (64 << 20) - shared - masks
    assert shared + masks > 512 << 10
    tiny = _Worker(model, dc.replace(SETTINGS, deconv=mirdeconv.DeconvOptions(memory=512 << 10)),
                   tmp_path)
    assert tiny._engine_options("p1", track, ctx).budget == (512 << 10) // 8


def test_a_track_whose_pieces_pass_the_budget_is_a_failure_not_an_abort(setup, tmp_path):
    """Under a budget too small for even one chunk of a long track, that (track, layer) is
    an error row naming the budget and the batch goes on (here nothing else is left: exit
    code 2), instead of the whole job stopping at the first layer."""
    import dataclasses as dc

    sf.write(tmp_path / "long.wav", tone_track(16000, 30.0, seed=3), 16000)
    settings = dc.replace(SETTINGS, analyse=False, deconv=DeconvOptions(memory=64 << 10))
    s = run_batch(setup / "net.keras", [tmp_path / "long.wav"], tmp_path / "out", settings,
                  progress=False)
    idx = load_index(tmp_path / "out")
    assert list(idx.status) == ["error", "error"] and list(idx.layer) == ["p1", "p2"]
    assert idx.error.str.contains("more than the memory budget of 8 KiB").all(), idx.error[0]
    assert s.exit_code == 2 and s.n_layers_done == 0


@pytest.mark.slow
def test_ctrl_c_stops_at_once_and_leaves_the_index_whole(setup, tmp_path):
    """SIGINT in the middle of a job of many tracks: the process is gone at once, and the
    index lists every finished layer's files and only files that are there
    (`mirdeconv index --check`)."""
    import signal
    import subprocess
    import sys
    import time

    from mirdeconv.runstore import check_index

    songs = []
    for i in range(12):
        songs.append(tmp_path / f"s{i}.wav")
        sf.write(songs[-1], tone_track(16000, 30.0, seed=i), 16000)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "mirdeconv.cli", "auralise", str(setup / "net.keras"),
                             *map(str, songs), "--layers", "p1,p2", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C reaches it as it reaches a command typed in a terminal,
                            # even when this test runs as a background job (which starts
                            # with SIGINT ignored, and a child inherits that)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not (out / "index.parquet").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)                                 # well inside a later track
    assert proc.poll() is None, "the job ended before it could be interrupted"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    # about 1 s on a quiet machine; the bound is loose so that a loaded machine (a TensorFlow
    # op runs to its end before Python sees the signal) does not fail it, yet far below the
    # minutes the job had left (and the 14.6 s it took before)
    assert proc.returncode == 130 and "interrupted" in err and took < 8.0, (proc.returncode, took, err[-500:])
    assert not any(check_index(out).values())
    idx = load_index(out)
    assert 0 < idx.track.nunique() < 12 and (idx.status == "ok").all()
