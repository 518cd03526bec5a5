"""First-party plugin: Schreiber's tempo CNNs from the ``tempocnn`` wheel as ``tempocnn:NAME``.

The PyPI wheel ``tempocnn==0.0.8`` (Hendrik Schreiber, https://github.com/hendriks73/tempo-cnn,
AGPL-3.0) ships 24 trained Keras models in ``tempocnn/models/*.h5``.  On first use the
wheel comes from the package registry without its dependencies (``pip download --no-deps``,
sha256 checked, or ``MIRDECONV_TEMPOCNN_WHEEL`` pointing to a local copy); only the model
files and the licence are read out of it, into the cache folder (``MIRDECONV_CACHE``), and
its code is never run.  Each ``.h5`` opens with Keras 3 in safe mode, with:

* the input of Schreiber's ``feature.py``: ``representations.tempocnn_librosa()`` (40 mel
  bands 20-5000 Hz of the magnitude at 11025 Hz, window 1024, hop 512), layout
  ``(batch, 40 bands, 256 frames, 1)``, patches of 256 frames every 128;
* his normalisation of the whole track (``classifier.py``): standardised for the deeptemp,
  deepsquare, shallowtemp and Mazurka models, divided by its maximum for fcn, cnn and
  ismir2018;
* 256 tempo classes, class ``k`` = ``30 + k`` BPM (30-285), as labels; task ``tempo``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from mirdeconv import load_model
from mirdeconv.registry import ModelSpec, Plugin
from mirdeconv.representations import tempocnn_librosa
from mirdeconv.zoo import Wheel, ZooError, cache_dir, cache_lock, get_wheel

WHEEL = Wheel("tempocnn==0.0.8", "tempocnn-0.0.8-py3-none-any.whl",
              "73ef63eecf1c783789c222882aeb286302083f2ef8dc2aeb37588156afc059b5",
              "TEMPOCNN_WHEEL")
LICENCE = ("tempocnn 0.0.8 (https://pypi.org/project/tempocnn/), models by Hendrik Schreiber, "
           "GNU Affero General Public License v3 (the wheel's LICENSE, copied beside the models)")
#: Class k of every model is 30 + k BPM.
BPM = [str(30 + k) for k in range(256)]
PATCH_FRAMES = 256

_PAPERS = {
    "ismir2018": "Schreiber & Mueller, ISMIR 2018 (single-step tempo CNN)",
    "deeptemp": "DeepTemp, Schreiber & Mueller, SMC 2019 (directional filters)",
    "deepsquare": "DeepSquare, Schreiber & Mueller, SMC 2019 (square filters)",
    "shallowtemp": "ShallowTemp, Schreiber & Mueller, SMC 2019 (directional filters)",
    "dt_maz": "DT-Maz, Schreiber, Zalkow & Mueller, ISMIR 2020 (Chopin Mazurkas)",
}


def _describe(name: str) -> str:
    if name in ("cnn", "fcn"):
        return f"tempo {name.upper()} of the tempocnn package (Schreiber), 256 BPM classes"
    family = next(k for k in _PAPERS if name.startswith(k))
    detail = name[len(family):].strip("_")
    return f"{_PAPERS[family]}{', ' + detail if detail else ''}; 256 BPM classes"


#: Every model in the wheel: name -> its normalisation of the whole track.
MODELS: dict[str, str] = {
    **{n: "track-max" for n in ("cnn", "fcn", "ismir2018")},
    **{f"deepsquare_k{k}": "track" for k in (1, 2, 4, 8)},
    **{f"deeptemp_k{k}": "track" for k in (2, 4, 8)},
    **{f"dt_maz_{s}_fold{k}": "track" for s in "mv" for k in range(5)},
    **{f"shallowtemp_k{k}": "track" for k in (1, 2, 4, 6)},
}


def models_dir() -> Path:
    """Where the models are unpacked (inside mirdeconv's cache folder)."""
    return cache_dir() / "tempocnn" / "0.0.8"


def fetch(name: str) -> Path:
    """The model's ``.h5`` in the cache, unpacking the wheel's models first when needed.

    Raises
    ------
    ZooError
        Unknown name, failed download or checksum, a wheel without the model.  Nothing
        half-written is left in the cache.
    """
    if name not in MODELS:
        raise ZooError(f"unknown tempocnn model {name!r}; the wheel has {', '.join(MODELS)}")
    folder = models_dir()
    done = folder / ".complete"
    if not done.is_file():
        with cache_lock(folder.parent / ".lock"):
            if not done.is_file():      # another process unpacked it meanwhile
                _unpack(folder)
    return folder / f"{name}.h5"


def _unpack(folder: Path) -> None:
    """The wheel's model files and licence into ``folder``, each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mirdeconv-tempocnn-") as tmp:
        wheel = get_wheel(Path(tmp), WHEEL)
        with zipfile.ZipFile(wheel) as zf:
            wanted = {f"tempocnn/models/{n}.h5": f"{n}.h5" for n in MODELS}
            wanted["tempocnn-0.0.8.dist-info/LICENSE"] = "LICENSE"
            missing = sorted(set(wanted) - set(zf.namelist()))
            if missing:
                raise ZooError(f"{wheel.name} lacks {', '.join(missing)}")
            for member, target in wanted.items():
                part = folder / f"{target}.part"
                part.write_bytes(zf.read(member))
                os.replace(part, folder / target)
    (folder / ".complete").write_text(LICENCE + "\n")


def _loader(name: str):
    def load(**options):
        options.setdefault("name", f"tempocnn:{name}")
        return load_model(fetch(name), representation=tempocnn_librosa(), input_axes="NFTC",
                          input_length=PATCH_FRAMES, labels=BPM, task="tempo",
                          input_normalization=MODELS[name], **options)

    return load


PLUGIN = Plugin(
    name="tempocnn",
    description="Schreiber's tempo CNNs (tempocnn 0.0.8 wheel, AGPL-3.0): 256 BPM classes",
    models=[ModelSpec(name, _loader(name), _describe(name)) for name in MODELS],
)
