"""A model as the page sees it before TensorFlow: its name, layers and representation.

Opening a model imports TensorFlow and parses its graph: about 5 s, most of a cold first
page.  What the pickers, a cached demo result, the descriptors and the pictures need of it
is small (the layer table, the representation, the graph's digest), so it is kept on disk
(``MIRDECONV_CACHE/app-models/*.json``, plain JSON) after the first time the model opened.
The model itself opens on first use (predictions, a deconvolution that is not cached), and
is checked then against what was kept: a model changed under the same id replaces it, in
memory and on disk, and the page redraws.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import MirdeconvError, UnknownLayerError
from ..graph import LayerInfo
from ..representations import Representation, from_dict

__all__ = ["ModelView", "model_view"]

#: Fields of a LayerInfo that are tuples (JSON gives lists back).
_TUPLES = ("shape", "receptive_field", "stride")


class ModelView:
    """A model's name, digest, representation and layers, with the model opened on demand.

    Parameters
    ----------
    facts : dict
        ``name``, ``digest`` (the graph's content digest), ``representation`` (its
        ``to_dict()``) and ``layers`` (each a :class:`~mirdeconv.graph.LayerInfo` as a dict).
    opener : callable () -> FrozenModel
        Opens the model itself (cached by the caller).
    path : Path, optional
        Where the facts are kept on disk.
    """

    def __init__(self, facts: dict[str, Any], opener: Callable[[], Any],
                 path: Path | None = None) -> None:
        self._opener = opener
        self._path = path
        self._lock = threading.Lock()
        self._checked = False
        #: The model, once open, was not what was kept: the view now holds the model's own
        #: facts (and the disk too, where it can be written); the page redraws.
        self.replaced = False
        self._take(facts)

    def _take(self, facts: dict[str, Any]) -> None:
        self.facts = facts
        self.name: str = facts["name"]
        self.digest: str = facts["digest"]
        self.representation: Representation = from_dict(facts["representation"])
        self.layers: list[LayerInfo] = [
            LayerInfo(**{k: tuple(v) if k in _TUPLES else v for k, v in li.items()})
            for li in facts["layers"]]

    @classmethod
    def of(cls, model: Any) -> ModelView:
        """The view of an open model."""
        view = cls(_facts(model), lambda: model)
        view._checked = True
        return view

    @property
    def model(self) -> Any:
        """The model itself (opened now if it was not), checked the first time against what
        was kept: if it changed, the view takes its facts (see :attr:`replaced`)."""
        model = self._opener()
        with self._lock:
            if not self._checked:
                now = _facts(model)
                if now != self.facts:
                    self._take(now)
                    self.replaced = True
                    if self._path is not None:
                        _save(self._path, now)
                self._checked = True
        return model

    def layer(self, name: str) -> LayerInfo:
        """A layer by name."""
        for li in self.layers:
            if li.name == name:
                return li
        raise UnknownLayerError(f"unknown layer {name!r}; layers: "
                                + ", ".join(li.name for li in self.layers))

    def redraw(self) -> bool:
        """Whether the model turned out to be other than what was kept since the last call
        (once per change: the caller redraws the page)."""
        with self._lock:
            replaced, self.replaced = self.replaced, False
        return replaced


def _facts(model: Any) -> dict[str, Any]:
    return json.loads(json.dumps({
        "name": model.name, "digest": model.graph.content_digest(),
        "representation": model.representation.to_dict(),
        "layers": [dataclasses.asdict(li) for li in model.layers]}))


def _save(path: Path, facts: dict[str, Any]) -> None:
    from ..store import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(facts))
    except OSError:            # a read-only cache: the page works without it
        pass


def _view_file(model_id: str) -> Path:
    from .. import __version__
    from ..zoo import cache_dir

    key = hashlib.sha256(f"{model_id}\n{__version__}".encode()).hexdigest()[:32]
    return cache_dir() / "app-models" / f"{key}.json"


def view_kept(model_id: str) -> bool:
    """Whether a registry model's view is on disk (opening it needs no TensorFlow)."""
    return _view_file(model_id).is_file()


def model_view(model_id: str, opener: Callable[[], Any]) -> ModelView:
    """The view of a registry model: from the disk if it was kept (no TensorFlow), else from
    the model, opened now, and kept."""
    path = _view_file(model_id)
    try:
        return ModelView(json.loads(path.read_text()), opener, path)
    except (OSError, ValueError, KeyError, TypeError, MirdeconvError):
        facts = _facts(opener())
        _save(path, facts)
        return ModelView(facts, opener, path)
