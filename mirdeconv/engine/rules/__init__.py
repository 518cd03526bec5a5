"""The backward rules, one small function per operation type, registered in
:data:`mirdeconv.engine.table.RULES` when this package is imported."""

from . import conv, elementwise, pool, shape

__all__ = ["conv", "elementwise", "pool", "shape"]
