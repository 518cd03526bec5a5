"""First-party plugin: Won et al. 2020's PyTorch music taggers as ``won2020:mtat-fcn``,
``won2020:mtat-crnn`` and ``won2020:mtat-musicnn``.

"Evaluation of CNN-based Automatic Music Tagging Models" (Won, Ferraro, Bogdanov & Serra,
SMC 2020) released the PyTorch checkpoints of the field's standard taggers
(https://github.com/minzwon/sota-music-tagging-models, ``models/mtat/<model>/best_model.pth``,
MIT licence, Music Technology Group, Universitat Pompeu Fabra; code by Minz Won).  A
checkpoint is a plain ``state_dict``: the networks are defined here from its keys and shapes,
and the weights read with ``torch.load(..., weights_only=True)`` (no code from the file runs).

Put the three files (renamed ``mtat_fcn.pth``, ``mtat_crnn.pth``, ``mtat_musicnn.pth``) in a
folder and give it as ``folder=`` or in ``MIRDECONV_WON2020_DIR``.  The front end is
mirdeconv's :func:`~mirdeconv.representations.won2020` (equal to their torchaudio mel
spectrogram in dB; checked against each checkpoint's own window and filterbank when it is
opened); the network proper starts at their ``spec_bn`` and takes ``(batch, 1, 96 bands,
frames)``:

* ``mtat-fcn``: Choi et al. 2016's fully convolutional tagger, 5 blocks of 3x3 conv, batch
  norm, ReLU and max-pool (64, 128, 128, 128, 64 maps), 29 s patches (1,813 frames);
* ``mtat-crnn``: Choi et al. 2017's CRNN, 4 such blocks, then a 2-layer ``torch.nn.GRU`` (32
  units) over the frames, 29 s patches (mirdeconv writes the GRU out as its equations when it
  opens the module);
* ``mtat-musicnn``: Pons et al.'s musicnn, timbral (67x7, 38x7) and temporal (1x129,
  1x65, 1x33 over the band-averaged spectrogram) front end, a residual 1-D mid end, max and
  mean over time, 3 s patches (188 frames).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import mirdeconv
from mirdeconv import backend
from mirdeconv.errors import ModelLoadError, message_of
from mirdeconv.options import env_value
from mirdeconv.registry import ModelSpec, Plugin
from mirdeconv.representations import won2020

#: The 50 MagnaTagATune tags, in the checkpoints' output order (``mtat_tags.txt``).
TAGS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir",
    "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
]
FOLDER_ENV = "MIRDECONV_WON2020_DIR"
SOURCE = "https://github.com/minzwon/sota-music-tagging-models (models/mtat/<model>/best_model.pth)"
N_MELS = 96


@dataclass(frozen=True)
class Tagger:
    """One of the checkpoints: its file, the network that fits it, its patch in frames."""

    file: str
    build: str
    frames: int
    description: str


MODELS: dict[str, Tagger] = {
    "mtat-fcn": Tagger("mtat_fcn.pth", "fcn", 1813,
                       "FCN (Choi et al. 2016), 5 conv layers, 50 MTAT tags (Won et al. 2020)"),
    "mtat-crnn": Tagger("mtat_crnn.pth", "crnn", 1813,
                        "CRNN (Choi et al. 2017), 4 conv layers + GRU, 50 MTAT tags (Won et al. 2020)"),
    "mtat-musicnn": Tagger("mtat_musicnn.pth", "musicnn", 188,
                           "musicnn (Pons et al.), timbral + temporal front end, 50 MTAT tags "
                           "(Won et al. 2020)"),
}


@functools.cache
def networks() -> dict[str, Any]:
    """The three networks as ``torch.nn.Module`` classes (defined once PyTorch is loaded)."""
    torch = backend.torch()
    nn = torch.nn

    class Conv2dBlock(nn.Module):
        """3x3 conv (same padding), batch norm, ReLU, max-pool: ``layerK.{conv,bn}``."""

        def __init__(self, cin: int, cout: int, pool: tuple[int, int]) -> None:
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=1)
            self.bn = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.mp = nn.MaxPool2d(pool)

        def forward(self, x: Any) -> Any:
            return self.mp(self.relu(self.bn(self.conv(x))))

    class FCN(nn.Module):
        """(N, 1, 96, 1813) -> (N, 50)."""

        def __init__(self) -> None:
            super().__init__()
            self.spec_bn = nn.BatchNorm2d(1)
            maps, pools = (1, 64, 128, 128, 128, 64), ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))
            for k in range(5):
                self.add_module(f"layer{k + 1}", Conv2dBlock(maps[k], maps[k + 1], pools[k]))
            self.dense = nn.Linear(64, len(TAGS))

        def forward(self, x: Any) -> Any:
            x = self.spec_bn(x)
            for k in range(5):
                x = getattr(self, f"layer{k + 1}")(x)
            return torch.sigmoid(self.dense(x.flatten(1)))

    class CRNN(nn.Module):
        """(N, 1, 96, 1813) -> (N, 50)."""

        def __init__(self) -> None:
            super().__init__()
            self.spec_bn = nn.BatchNorm2d(1)
            maps, pools = (1, 64, 128, 128, 128), ((2, 2), (3, 3), (4, 4), (4, 4))
            for k in range(4):
                self.add_module(f"layer{k + 1}", Conv2dBlock(maps[k], maps[k + 1], pools[k]))
            self.layer5 = nn.GRU(128, 32, 2, batch_first=True)
            self.dense = nn.Linear(32, len(TAGS))

        def forward(self, x: Any) -> Any:
            x = self.spec_bn(x)
            for k in range(4):
                x = getattr(self, f"layer{k + 1}")(x)
            x, _ = self.layer5(x.squeeze(2).permute(0, 2, 1))
            return torch.sigmoid(self.dense(x[:, -1]))

    class Timbral(nn.Module):
        """A vertical filter over (bands x 7 frames), batch norm, ReLU, max over bands."""

        def __init__(self, maps: int, bands: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, maps, (bands, 7), padding=(0, 3))
            self.bn = nn.BatchNorm2d(maps)
            self.relu = nn.ReLU()

        def forward(self, x: Any) -> Any:
            return self.relu(self.bn(self.conv(x))).amax(dim=2)

    class Temporal(nn.Module):
        """A temporal filter over the band-averaged spectrogram, batch norm, ReLU."""

        def __init__(self, maps: int, length: int) -> None:
            super().__init__()
            self.conv = nn.Conv1d(1, maps, length, padding=length // 2)
            self.bn = nn.BatchNorm1d(maps)
            self.relu = nn.ReLU()

        def forward(self, x: Any) -> Any:
            return self.relu(self.bn(self.conv(x.mean(dim=2))))

    class Conv1dBlock(nn.Module):
        """Conv1d (kernel 7, same padding), batch norm, ReLU."""

        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv = nn.Conv1d(cin, cout, 7, padding=3)
            self.bn = nn.BatchNorm1d(cout)
            self.relu = nn.ReLU()

        def forward(self, x: Any) -> Any:
            return self.relu(self.bn(self.conv(x)))

    class Musicnn(nn.Module):
        """(N, 1, 96, 188) -> (N, 50)."""

        def __init__(self) -> None:
            super().__init__()
            self.spec_bn = nn.BatchNorm2d(1)
            self.layers = nn.ModuleList([
                Timbral(204, int(0.7 * N_MELS)), Timbral(204, int(0.4 * N_MELS)),
                Temporal(51, 129), Temporal(51, 65), Temporal(51, 33)])
            self.layer1 = Conv1dBlock(561, 64)
            self.layer2 = Conv1dBlock(64, 64)
            self.layer3 = Conv1dBlock(64, 64)
            self.dense1 = nn.Linear((561 + 3 * 64) * 2, 200)
            self.bn = nn.BatchNorm1d(200)
            self.relu = nn.ReLU()
            self.dense2 = nn.Linear(200, len(TAGS))

        def forward(self, x: Any) -> Any:
            x = self.spec_bn(x)
            front = torch.cat([m(x) for m in self.layers], 1)          # (N, 561, T)
            r1 = self.layer1(front)
            r2 = self.layer2(r1) + r1
            r3 = self.layer3(r2) + r2
            out = torch.cat([front, r1, r2, r3], 1)
            out = torch.cat([out.amax(dim=2), out.mean(dim=2)], 1)
            return torch.sigmoid(self.dense2(self.relu(self.bn(self.dense1(out)))))

    return {"fcn": FCN, "crnn": CRNN, "musicnn": Musicnn}


def _folder(folder: str | os.PathLike | None) -> Path:
    where = folder or env_value("WON2020_DIR")
    if not where:
        raise ModelLoadError(
            f"Won et al.'s taggers need their checkpoints: pass folder=... or set {FOLDER_ENV} "
            f"to a folder holding {', '.join(t.file for t in MODELS.values())} (from {SOURCE})")
    return Path(where)


def checkpoint(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The checkpoint of ``name`` as a ``state_dict`` of tensors (weights only).

    Raises
    ------
    ModelLoadError
        Missing, unreadable, or not a state_dict.
    """
    torch = backend.torch()
    path = _folder(folder) / MODELS[name].file
    if not path.is_file():
        raise ModelLoadError(f"{name}: checkpoint not found: {path} (from {SOURCE})")
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle's and zip's many error types
        raise ModelLoadError(f"{path.name} is not a readable PyTorch checkpoint: "
                             f"{message_of(exc)}") from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path.name} holds a {type(state).__name__}, not a state_dict")
    return state


def check_front_end(state: dict[str, Any], name: str) -> float:
    """The largest difference between the checkpoint's own mel filterbank and window and
    those of :func:`mirdeconv.representations.won2020`.

    Raises
    ------
    ModelLoadError
        They differ by more than 1e-4 (the checkpoint is not one of these front ends).
    """
    rep = won2020()
    fb = state["spec.mel_scale.fb"].numpy().T                     # (96, 257)
    import scipy.signal

    window = scipy.signal.get_window("hann", rep.n_fft, fftbins=True)
    diff = max(float(np.abs(fb - rep.filterbank()).max()),
               float(np.abs(state["spec.spectrogram.window"].numpy() - window).max()))
    if diff > 1e-4:
        raise ModelLoadError(f"{name}: the checkpoint's front end differs from won2020()'s by {diff:.2g}")
    return diff


def build(name: str, folder: str | os.PathLike | None = None) -> Any:
    """The PyTorch module of ``name`` with its checkpoint's weights, in evaluation mode.

    Raises
    ------
    ModelLoadError
        The checkpoint's keys or shapes do not fit the network (naming them).
    """
    state = checkpoint(name, folder)
    lacking = [k for k in ("spec.mel_scale.fb", "spec.spectrogram.window") if k not in state]
    if lacking:
        raise ModelLoadError(f"{name}: the checkpoint has no front end ({', '.join(lacking)})")
    check_front_end(state, name)
    net = networks()[MODELS[name].build]()
    weights = {k: v for k, v in state.items() if not k.startswith("spec.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        raise ModelLoadError(f"{name}: the checkpoint does not fit the network: "
                             f"{str(exc).splitlines()[0][:300]}") from None
    return net.eval()


def load(name: str, folder: str | os.PathLike | None = None) -> Any:
    """One of the taggers as a mirdeconv model."""
    torch = backend.torch()
    tagger = MODELS[name]
    net = build(name, folder)
    return mirdeconv.load_model(net, representation=won2020(), input_axes="NCFT",
                                example_input=torch.zeros(1, 1, N_MELS, tagger.frames),
                                labels=list(TAGS), name=f"won2020-{name}")


def requires(name: str) -> str:
    """What ``name`` still needs: the ``torch`` extra, the folder, the checkpoint."""
    import importlib.util

    missing = [m for m in ("torch", "onnx", "onnx2tf") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} ({backend.TORCH_EXTRA})"
    where = env_value("WON2020_DIR")
    if not where:
        return f"set {FOLDER_ENV} to the folder of the checkpoints"
    path = Path(where) / MODELS[name].file
    return "" if path.is_file() else f"{path} is missing"


PLUGIN = Plugin(
    name="won2020",
    description="Won, Ferraro, Bogdanov & Serra, SMC 2020: PyTorch taggers (MagnaTagATune)",
    models=[ModelSpec(name, functools.partial(load, name), t.description,
                      requires=functools.partial(requires, name)) for name, t in MODELS.items()],
)

__all__ = ["PLUGIN", "MODELS", "TAGS", "networks", "build", "checkpoint", "load",
           "check_front_end"]
