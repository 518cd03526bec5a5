"""First-party plugin: the musicnn zoo (mtt/msd x musicnn/vgg) as ``musicnn:NAME``.

Built exactly like a third-party plugin, with mirdeconv's public API only.
"""

from mirdeconv import load_model
from mirdeconv.registry import ModelSpec, Plugin
from mirdeconv.zoo import ZOO, fetch


def _loader(name):
    def load(**options):
        return load_model(fetch(name), name=name, **options)

    return load


PLUGIN = Plugin(
    name="musicnn",
    description="musicnn-family taggers (Pons & Serra), converted from the musicnn wheel",
    models=[ModelSpec(name, _loader(name), entry.description) for name, entry in ZOO.items()],
)
