"""Every bad value of every option of every command is refused as it is parsed: exit code
2, one line on stderr, no traceback, no output folder, in well under 2 s (no model loads,
no TensorFlow).  And the library's own calls refuse the same values."""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
import soundfile as sf

from mirdeconv.cli import build_parser, main
from mirdeconv.errors import InvalidOptionError
from mirdeconv.options import NUMBERS, check_number

BAD_NUMBERS = {True: ["1.5", "x", "-3", "0"], False: ["x", "nan", "inf", "-5"]}


def _bad_values(action: argparse.Action) -> list[str]:
    """Values this option must refuse, from what its type or choices say."""
    kind = getattr(action.type, "__name__", "")
    if kind in NUMBERS:
        spec = NUMBERS[kind]
        return [v for v in BAD_NUMBERS[spec.integer] + ["100000000"]
                if not _accepts(spec, v)]
    if kind == "feature_text":
        return ["-2", "7-3", "x"]
    if kind == "representation_text":
        return ["no-such-preset", "missing.json"]
    if kind == "_size":
        return ["1K", "lots"]
    if kind == "methods_text":
        return ["bogus", ","]
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        return ["bogus"]
    return []


def _accepts(spec, text):
    try:
        spec.parse("x", text)
        return True
    except InvalidOptionError:
        return False


def _positionals(parser: argparse.ArgumentParser, wav: str) -> list[str]:
    out = []
    for a in parser._actions:
        if a.option_strings or isinstance(a, argparse._SubParsersAction):
            continue
        out.append({"model": "mtt-vgg", "source": wav.rsplit("/", 1)[0], "folder": "."}.get(a.dest, wav))
    return out


def cases(wav: str):
    sub = build_parser()._subparsers._group_actions[0].choices
    for command, parser in sub.items():
        if command == "zoo":
            continue
        base = [command, *_positionals(parser, wav)]
        for a in parser._actions:                  # required options other than --out
            if a.option_strings and a.required and a.dest != "out":
                base += [a.option_strings[0], "x"]
        for action in parser._actions:
            if not action.option_strings or action.dest in ("out", "help"):
                continue
            for bad in _bad_values(action):
                yield command, base, action.option_strings[0], bad


def test_every_bad_value_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    wav = tmp_path / "songs" / "t.wav"
    wav.parent.mkdir()
    sf.write(wav, 0.1 * np.sin(np.arange(16000) / 5), 16000)
    seen = 0
    for command, base, flag, bad in cases(str(wav)):
        out = tmp_path / f"out-{seen}"
        argv = [*base, f"{flag}={bad}"] + (["--out", str(out)] if command not in (
            "layers", "predict", "index", "plugins", "models", "app") else [])
        t0 = time.perf_counter()
        rc = main(argv)
        took = time.perf_counter() - t0
        err = capsys.readouterr().err.strip()
        assert rc == 2, (argv, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert flag.lstrip("-").split("-")[0] in err or bad in err, (argv, err)
        assert not out.exists(), argv
        assert took < 2.0, (argv, took)
        seen += 1
    assert seen >= 40          # every numeric, choice, size, selection and preset option


def test_a_scheduler_that_does_not_answer_is_refused_at_once(tmp_path, capsys):
    wav = tmp_path / "t.wav"
    sf.write(wav, 0.1 * np.sin(np.arange(16000) / 5), 16000)
    t0 = time.perf_counter()
    rc = main(["atlas", "mtt-vgg", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1",
               "--out", str(tmp_path / "atlas")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and time.perf_counter() - t0 < 5
    assert "no Dask scheduler answers at tcp://127.0.0.1:1" in err
    assert not (tmp_path / "atlas").exists()


@pytest.mark.parametrize("kind,bad", [("top_k", -3), ("top_k", 0), ("top_k", 1.5), ("top_k", True),
                                      ("excerpt", 0), ("seconds", -5), ("most_active", -2),
                                      ("steps", 2.0), ("noise", float("nan"))])
def test_the_library_refuses_them_too(kind, bad):
    with pytest.raises(InvalidOptionError, match=f"{kind} must be"):
        check_number(kind, bad)


def test_settings_refuse_bad_numbers():
    from mirdeconv.atlas import AtlasSettings
    from mirdeconv.explanations import Settings

    with pytest.raises(InvalidOptionError, match=r"k \(winners per unit\) must be an integer of at least 1"):
        AtlasSettings(model="m", k=-3)
    with pytest.raises(InvalidOptionError, match=r"excerpt \(seconds\) must be a number above 0"):
        AtlasSettings(model="m", excerpt=0)
    with pytest.raises(InvalidOptionError, match="steps must be an integer"):
        Settings(steps=1.5)


@pytest.mark.parametrize("features", [[1.5], True, [True], "1.5", [0, "x"]])
def test_a_feature_selection_of_non_integers_is_refused(features):
    from mirdeconv.options import parse_features

    with pytest.raises(InvalidOptionError):
        parse_features(features, 8)


def test_a_refusal_after_the_model_loads_leaves_no_folder(keras, tmp_path, capsys):
    """An unknown layer, a tag the model does not have, a feature beyond the layer: refused
    once the model is open, and the output folder the command had made is gone again."""
    import json

    from .test_atlas import REP, SR, TAGS
    from .test_explain import build

    L = keras.layers
    net = build(keras, lambda kind, name: {"relu": L.ReLU, "elu": L.ELU}[kind](name=name))
    net.save(tmp_path / "net.keras")
    (tmp_path / "net.mirdeconv.json").write_text(json.dumps(
        {"representation": REP.to_dict(), "input_axes": "NFTC", "labels": TAGS}))
    wav = tmp_path / "t.wav"
    sf.write(wav, (0.2 * np.sin(np.arange(3 * SR) / 7)).astype(np.float32), SR)
    model = str(tmp_path / "net.keras")
    for i, argv in enumerate([
            ["deconvolve", model, str(wav), "--layer", "nosuch"],
            ["deconvolve", model, str(wav), "--layer", "c2", "--features", "0-999"],
            ["explain", model, str(wav), "--tag", "nosuchtag"],
            ["sanity", model, str(wav), "--layer", "nosuch"]]):
        out = tmp_path / f"out{i}" / "deeper"
        assert main([*argv, "--out", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("mirdeconv: error:"), err
        assert not (tmp_path / f"out{i}").exists(), argv


def test_a_misspelt_model_gets_the_closest_names(capsys):
    assert main(["layers", "mtt-vg"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("mirdeconv: error: model file not found: mtt-vg; did you mean 'mtt-vgg'? "
                   "(`mirdeconv models` lists them)")
