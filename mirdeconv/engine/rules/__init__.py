"""The backward rules, one small function per rule family, registered in
:data:`mirdeconv.engine.table.FAMILIES` when this package is imported (each operation's
family is in its declaration, :mod:`mirdeconv.graph.operations`)."""

from . import conv, elementwise, pool, shape

__all__ = ["conv", "elementwise", "pool", "shape"]
