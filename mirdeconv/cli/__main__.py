"""``python -m mirdeconv.cli``."""

from . import console

console()
