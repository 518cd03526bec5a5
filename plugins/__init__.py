"""mirdeconv's first-party model plugins, installed as the package ``mirdeconv_plugins``.

Each subpackage is a plugin shaped exactly like a third-party one (a module that defines
``PLUGIN = mirdeconv.registry.Plugin(...)`` with mirdeconv's public API only) and is
registered through the entry-point group ``mirdeconv.plugins`` in ``pyproject.toml``.
"""
