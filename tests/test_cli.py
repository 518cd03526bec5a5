"""The command line: layers, deconvolve, demo; bad input leaves no files behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from mirdeconv.cli import main
from mirdeconv.representations import MelSpectrogram

from .conftest import tone_track

REP = MelSpectrogram(sr=16000, n_fft=512, hop_length=256, n_mels=32, compression="log10")


@pytest.fixture(scope="module")
def files(tmp_path_factory, keras):
    d = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(2)
    L = keras.layers
    inp = keras.Input((32, 40, 1))
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inp)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    model = keras.Model(inp, x)
    model.save(d / "net.keras")
    (d / "net.mirdeconv.json").write_text(json.dumps({"representation": REP.to_dict()}))
    sf.write(d / "song.wav", tone_track(22050, 3.0), 22050)
    sf.write(d / "silence.wav", np.zeros(22050, np.float32), 22050)
    sf.write(d / "tiny.wav", tone_track(22050, 3.0)[:300], 22050)
    (d / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (d / "empty.flac").write_bytes(b"")
    bad = tone_track(22050, 1.0)
    bad[100:110] = np.nan
    sf.write(d / "nan.wav", bad, 22050, subtype="FLOAT")
    return d


def test_layers(files, capsys):
    assert main(["layers", str(files / "net.keras")]) == 0
    out = capsys.readouterr().out
    assert "mel 32 bands, 16000 Hz" in out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines()[2:]}
    assert lines["pool1"][1:4] == ["6", "NFTC", "4"] and lines["conv2"][3] == "8"


def test_deconvolve_writes_masks_and_pictures(files, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["deconvolve", str(files / "net.keras"), str(files / "song.wav"), "--layer",
               "conv2", "--features", "0-3", "--out", str(out)])
    assert rc == 0
    folder = out / "song" / "conv2"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"f{k:03d}.{e}" for k in range(4) for e in ("npy", "png")] + ["summary.json"]
    m = np.load(folder / "f002.npy")
    assert m.shape == (188, 32) and m.dtype == np.float32 and np.abs(m).max() > 0
    with open(folder / "f002.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["layer"] == "conv2" and len(summary["features"]) == 4
    assert summary["model"]["graph_sha256"]
    err = capsys.readouterr().err
    assert "conv2 (deconvnet)" in err  # the progress bar


@pytest.mark.parametrize("args,msg", [
    (["net.keras", "missing.wav", "--layer", "conv1"], "audio file not found"),
    (["net.keras", "empty.flac", "--layer", "conv1"], "is empty"),
    (["net.keras", "broken.wav", "--layer", "conv1"], "cannot decode broken.wav"),
    (["net.keras", "nan.wav", "--layer", "conv1"], "10 NaN or infinite samples"),
    (["net.keras", "silence.wav", "--layer", "conv1"], "silent"),
    (["net.keras", "tiny.wav", "--layer", "conv2"], "shorter than the receptive field"),
    (["net.keras", "song.wav", "--layer", "conv9"], "unknown layer 'conv9'"),
    (["net.keras", "song.wav", "--layer", "conv1", "--features", "0-6"], "out of range"),
    (["song.wav", "song.wav", "--layer", "conv1"], "not a model file"),
])
def test_bad_input_fails_clearly_and_writes_nothing(files, tmp_path, capsys, args, msg):
    out = tmp_path / "out"
    argv = ["deconvolve", str(files / args[0]), str(files / args[1]), *args[2:], "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirdeconv: error: ") and msg in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*"))


def test_output_folder_not_writable(files, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["deconvolve", str(files / "net.keras"), str(files / "song.wav"), "--layer",
               "conv1", "--features", "0", "--out", str(blocker / "sub")])
    assert rc == 2 and "cannot write to output folder" in capsys.readouterr().err


@pytest.mark.slow
def test_demo(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--layers", "pool1,pool5", "--features", "0-1",
                 "--seconds", "4"]) == 0
    assert (tmp_path / "vggnet5.keras").is_file() and (tmp_path / "demo.wav").is_file()
    for layer in ("pool1", "pool5"):
        assert len(list((tmp_path / "deconvolution" / layer).glob("*.png"))) == 2


def test_selections_and_folders_are_refused_before_the_model_loads(files, tmp_path, capsys,
                                                                    monkeypatch):
    """A feature typo, an unwritable folder or a bad track is named before the model is
    opened: here the model does not even exist, and its error never comes."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for extra, msg in ((["--features", "0-3,x"], "cannot read 'x' in the feature selection"),
                       (["--features", "0-99999999999999999999x"], "cannot read"),
                       (["--out", str(blocker / "sub")], "cannot write to output folder"),
                       (["--features", "0"], "cannot decode broken.wav")):
        track = "broken.wav" if "broken" in msg else "song.wav"
        argv = ["deconvolve", str(tmp_path / "missing.keras"), str(files / track), "--layer", "c",
                "--out", str(tmp_path / "o"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and "model file not found" not in err, err
    from mirdeconv import batch

    opened = []
    monkeypatch.setattr(batch, "load_model", lambda *a, **k: opened.append(a))
    assert main(["auralise", str(files / "net.keras"), str(files / "song.wav"), "--features",
                 "7-3", "--out", str(tmp_path / "o2")]) == 2
    assert "cannot read '7-3'" in capsys.readouterr().err and not opened
