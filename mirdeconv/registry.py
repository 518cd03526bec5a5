"""Model plugins: how mirdeconv finds models that other people describe.

A plugin is a Python module that defines ``PLUGIN``, a :class:`Plugin`::

    # my_models.py  (on MIRDECONV_PLUGIN_PATH, or installed with an entry point)
    import mirdeconv
    from mirdeconv.registry import ModelSpec, Plugin

    def load_tagger(**options):
        net = build_my_keras_net()               # any keras.Model
        net.load_weights(options.get("weights", "tagger.weights.h5"))
        return mirdeconv.load_model(net, representation=MY_MEL, labels=MY_TAGS)

    PLUGIN = Plugin(name="mine", models=[ModelSpec("tagger", load_tagger, "my tagger")])

The registry finds plugins in two places, and one broken plugin never hides the others
(it is listed with its error):

* the entry-point group ``mirdeconv.plugins`` of installed packages
  (``[project.entry-points."mirdeconv.plugins"] mine = "my_models"``), which is also how
  mirdeconv's own first-party plugins (the ``mirdeconv_plugins`` package) are registered;
* the folders in ``MIRDECONV_PLUGIN_PATH`` (separated by ``os.pathsep``): every ``*.py``
  file and every package folder in them.

Discovery imports each plugin once and caches the result (per value of
``MIRDECONV_PLUGIN_PATH``); :func:`refresh` looks again, as after installing a package in a
running process.  The entry points are read by the same mechanism as the model adapters'
(:class:`mirdeconv.entrypoints.EntryPointRegistry`: one read of the installed packages for
both groups, one lock, one refresh for both).  Every model gets a stable id
``plugin:model``; :func:`mirdeconv.load_model` takes it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entrypoints import EntryPointRegistry, Loaded, describe_error, unknown_name
from .errors import ModelLoadError
from .options import environment

__all__ = ["ModelSpec", "Plugin", "PluginInfo", "discover", "refresh", "models", "load",
           "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "mirdeconv.plugins"


@dataclass(frozen=True)
class ModelSpec:
    """One model a plugin offers.

    Parameters
    ----------
    name : str
        Its name within the plugin (the id is ``plugin:name``).
    load : callable
        ``load(**options)`` returns anything :func:`mirdeconv.load_model` accepts with no
        further options: a FrozenModel, or a path to an Essentia ``.pb``.
    description : str
        One line for people.
    requires : callable, optional
        ``requires()`` returns ``""`` when the model can be loaded as things are, else a
        sentence saying what it needs (a folder of weights to configure, an extra to
        install).  Front ends offer only the models whose requirements are met.
    """

    name: str
    load: Callable[..., Any]
    description: str = ""
    requires: Callable[[], str] | None = None

    def unmet(self) -> str:
        """What the model still needs before it can be loaded (``""``: nothing)."""
        if self.requires is None:
            return ""
        try:
            return str(self.requires() or "")
        except Exception as exc:  # a plugin's own check failing is itself the reason
            return describe_error(exc)


@dataclass(frozen=True)
class Plugin:
    """What a plugin module exports as ``PLUGIN``."""

    name: str
    models: list[ModelSpec] = field(default_factory=list)
    description: str = ""


@dataclass
class PluginInfo:
    """A plugin as found: where from, whether it loaded, its models or its error."""

    name: str
    source: str
    status: str                  # "ok" or "error"
    error: str = ""
    plugin: Plugin | None = None

    @property
    def models(self) -> list[ModelSpec]:
        return list(self.plugin.models) if self.plugin else []


def _import_file(path: Path) -> Any:
    """Import a plugin from a ``.py`` file or a package folder under a private module name."""
    init = path / "__init__.py" if path.is_dir() else path
    mod_name = f"mirdeconv_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(
        mod_name, init, submodule_search_locations=[str(path)] if path.is_dir() else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


def _plugin_of(module: Any, source: str) -> Plugin:
    plugin = getattr(module, "PLUGIN", None)
    if callable(plugin) and not isinstance(plugin, Plugin):
        plugin = plugin()
    if not isinstance(plugin, Plugin):
        raise TypeError(f"{source} defines no PLUGIN = mirdeconv.registry.Plugin(...)")
    return plugin


class _Failed(Exception):
    """An entry point that could not be loaded (its error already described)."""


def _from_entry_points(loaded: list[Loaded]) -> list[PluginInfo]:
    found = []
    for ep in loaded:
        source = f"entry point {ep.name} = {ep.value}"
        try:
            if ep.error:
                raise _Failed(ep.error)
            plugin = ep.obj if isinstance(ep.obj, Plugin) else _plugin_of(ep.obj, source)
            found.append(PluginInfo(plugin.name, source, "ok", plugin=plugin))
        except _Failed as exc:
            found.append(PluginInfo(ep.name, source, "error", str(exc)))
        except Exception as exc:
            found.append(PluginInfo(ep.name, source, "error", describe_error(exc)))
    return found


def _from_folder(folder: Path) -> list[PluginInfo]:
    if not folder.is_dir():
        return [PluginInfo(folder.name, str(folder), "error", "folder not found")]
    found = []
    for path in sorted(folder.iterdir()):
        is_pkg = path.is_dir() and (path / "__init__.py").is_file()
        if not (is_pkg or (path.suffix == ".py" and path.is_file())) or \
                path.name.startswith(("_", ".")):
            continue
        try:
            plugin = _plugin_of(_import_file(path), str(path))
            found.append(PluginInfo(plugin.name, str(path), "ok", plugin=plugin))
        except Exception as exc:
            found.append(PluginInfo(path.stem, str(path), "error", describe_error(exc)))
    return found


def _mark_duplicates(found: list[PluginInfo]) -> list[PluginInfo]:
    names: set[str] = set()
    for info in found:  # later duplicates of a name are reported, never silently shadowed
        if info.status == "ok" and info.name in names:
            info.status, info.error = "error", f"a plugin named {info.name!r} is already loaded"
            info.plugin = None
        names.add(info.name)
    return found


REGISTRY: EntryPointRegistry[list[PluginInfo]] = EntryPointRegistry(ENTRY_POINT_GROUP,
                                                                     _from_entry_points)


def discover() -> list[PluginInfo]:
    """Every plugin mirdeconv can see, loaded or with its error, entry points first.

    Each plugin is imported once: the entry points on the first call, the folders of
    ``MIRDECONV_PLUGIN_PATH`` once per value of that variable (see :func:`refresh`).
    """
    folders = environment().plugin_path
    from_eps = REGISTRY.discover()
    from_folders = REGISTRY.memo(("folders", folders), lambda: [
        info for f in folders for info in _from_folder(f)])
    found = [PluginInfo(i.name, i.source, i.status, i.error, i.plugin)
             for i in from_eps + from_folders]
    return _mark_duplicates(found)


def refresh() -> list[PluginInfo]:
    """Forget what was discovered and look again: the entry points (of plugins and of model
    adapters alike, :func:`mirdeconv.entrypoints.refresh`) and the plugin folders."""
    REGISTRY.refresh()
    return discover()


def models() -> dict[str, tuple[PluginInfo, ModelSpec]]:
    """Model id (``plugin:model``) -> (plugin, spec), for every plugin that loaded."""
    out: dict[str, tuple[PluginInfo, ModelSpec]] = {}
    for info in discover():
        for spec in info.models:
            out[f"{info.name}:{spec.name}"] = (info, spec)
    return out


def is_model_id(source: Any) -> bool:
    """Whether ``source`` looks like ``plugin:model`` (and is not an existing path)."""
    return (isinstance(source, str) and ":" in source and not os.path.exists(source)
            and "/" not in source.split(":", 1)[0])


def load(model_id: str, **options: Any) -> Any:
    """Load a plugin model by id.

    Raises
    ------
    ModelLoadError
        Unknown plugin or model (the message lists what there is), or the plugin's loader
        failed (with its error).
    """
    plugin_name, _, name = model_id.partition(":")
    infos = [i for i in discover() if i.name == plugin_name]
    if not infos:
        raise ModelLoadError(unknown_name("plugin", plugin_name,
                                          sorted({i.name for i in discover()}), "plugins"))
    info = infos[0]
    if info.status != "ok":
        raise ModelLoadError(f"plugin {plugin_name!r} failed to load: {info.error}")
    for spec in info.models:
        if spec.name == name:
            try:
                return spec.load(**options)
            except ModelLoadError:
                raise
            except Exception as exc:
                raise ModelLoadError(f"{model_id}: the plugin could not load it: {describe_error(exc)}") \
                    from None
    raise ModelLoadError(f"plugin {plugin_name!r} has no model {name!r}; it has "
                         + ", ".join(s.name for s in info.models))
