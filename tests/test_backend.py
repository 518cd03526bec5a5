"""Import order of TensorFlow and Essentia, proved in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow


def _modules() -> list[str]:
    """Every module of the package (but the app's script, which draws the page on import,
    and ``python -m`` entry points, which run the command)."""
    import pkgutil

    import mirdeconv

    names = ["mirdeconv"] + [m.name for m in pkgutil.walk_packages(mirdeconv.__path__, "mirdeconv.")]
    return [n for n in names if n != "mirdeconv.app.main" and not n.endswith(".__main__")]


MODULES = _modules()


def run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_importing_mirdeconv_does_not_import_tensorflow():
    assert {"mirdeconv.engine.program", "mirdeconv.analysis.study", "mirdeconv.options"} <= set(MODULES)
    mods = MODULES + MODULES[::-1]
    r = run(f"""
        import importlib, sys
        for m in {mods!r}:
            importlib.import_module(m)
        assert 'tensorflow' not in sys.modules, 'tensorflow imported'
        assert 'essentia' not in sys.modules, 'essentia imported'
        print('clean')
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "clean" in r.stdout


def test_tensorflow_through_backend_then_essentia_works():
    r = run("""
        from mirdeconv import backend
        tf = backend.tensorflow()            # loads essentia first
        import essentia.standard as es      # the user's own import: fine now
        import numpy as np
        out = es.TensorflowInputMusiCNN()(np.zeros(512, np.float32) + 0.1)
        print('ok', len(out), tf.__version__)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ok 96" in r.stdout


def test_user_imported_tensorflow_first_gets_a_clear_error_not_an_abort():
    r = run("""
        import tensorflow as tf             # the user's import, before mirdeconv
        import numpy as np
        import mirdeconv
        from mirdeconv import backend
        from mirdeconv.errors import EssentiaImportOrderError
        ok, why = backend.essentia_status()
        assert not ok and 'before Essentia' in why
        try:
            backend.essentia()
        except EssentiaImportOrderError as exc:
            print('clear error:', exc)
        # TensorFlow and Keras still work for the engine
        keras = backend.keras()
        inp = keras.Input((16, 20, 1))
        x = keras.layers.Conv2D(4, 3, padding='same', activation='relu')(inp)
        m = keras.Model(inp, keras.layers.MaxPooling2D(2, name='p')(x))
        fm = mirdeconv.load_model(m, representation=mirdeconv.representations.LinearSpectrogram(
            sr=8000, n_fft=30, hop_length=8))
        y = np.sin(np.arange(8000) * 0.3).astype(np.float32)
        r = mirdeconv.deconvolve(fm, y, 8000, layer='p')
        print('engine ok', r.masks.shape)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "clear error:" in r.stdout and "Import mirdeconv or essentia before" in r.stdout
    assert "engine ok (4," in r.stdout


def test_essentia_imported_by_user_first_is_fine():
    r = run("""
        import essentia.standard
        from mirdeconv import backend
        tf = backend.tensorflow()
        assert backend.essentia_status() == (True, '')
        print('ok')
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ok" in r.stdout


def test_keras_imported_first_counts_as_tensorflow():
    r = run("""
        import keras
        from mirdeconv import backend
        ok, why = backend.essentia_status()
        print('usable' if ok else 'refused')
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "refused" in r.stdout
