"""The wheel: it holds the first-party plugins and their entry points, and installed from it,
outside the checkout, the command line lists every model and the app opens on its default."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """``pip wheel . -w dist``, then ``pip install --no-deps --target DIR`` of that wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist, target = tmp / "dist", tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT),
                        "-w", str(dist)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = dist.glob("mirdeconv-*.whl")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                        str(target), str(wheel)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return wheel, target


def _python(target: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=900, cwd=cwd, env=env)


def test_the_wheel_holds_the_plugins_and_their_entry_points(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("mirdeconv_plugins/__init__.py", "mirdeconv_plugins/choi2016/__init__.py",
              "mirdeconv_plugins/musicnn_zoo/__init__.py", "mirdeconv_plugins/tempocnn/__init__.py",
              "mirdeconv/normalization.py", "mirdeconv/engine/rules/conv.py",
              "mirdeconv/analysis/study.py", "mirdeconv/app/main.py"):
        assert f in names, f
    (ep,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(ep).decode()
    assert "[mirdeconv.plugins]" in text
    assert "musicnn = mirdeconv_plugins.musicnn_zoo" in text
    assert "choi2016 = mirdeconv_plugins.choi2016" in text
    assert "tempocnn = mirdeconv_plugins.tempocnn" in text


def test_installed_from_the_wheel_the_models_are_listed(installed, tmp_path, zoo_cache):
    _, target = installed
    r = _python(target, """
        import mirdeconv, mirdeconv_plugins
        print(mirdeconv.__file__)
        print(mirdeconv_plugins.__file__)
        from mirdeconv.cli import main
        main(["models"])
    """, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith(str(target)) and lines[1].startswith(str(target))  # not the checkout
    listed = {line.split()[0] for line in lines[2:]}
    assert {"musicnn:mtt-vgg", "musicnn:mtt-musicnn", "musicnn:msd-vgg", "musicnn:msd-musicnn",
            "choi2016:music_tagger_cnn", "tempocnn:deeptemp_k4", "tempocnn:fcn"} <= listed


def test_installed_from_the_wheel_the_app_opens_on_its_default_model(installed, tmp_path, zoo_cache):
    _, target = installed
    page = target / "mirdeconv" / "app" / "main.py"
    r = _python(target, f"""
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(page)!r}, default_timeout=600).run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        print(at.selectbox(key="model").value)
        print(at.subheader[0].value)
    """, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    model, first = r.stdout.splitlines()[-2:]
    assert model == "musicnn:mtt-vgg" and first.startswith("Feature 0")
