"""The rule table: one backward rule per rule family.

Every operation type is declared once, in :mod:`mirdeconv.graph.operations`; its row names
its backward rule **family** (``"convolution"``, ``"max_pool"``, ``"nonlinear"`` ...).  A
rule is a small function ``rule(ctx, step) -> None`` that fills ``step.save`` (what the
forward pass records) and ``step.rule`` (and, when the rule works channel by channel,
``step.compact_rule``); it enters :data:`FAMILIES` under its family's name with
:func:`register`.  A new operation that an existing family covers is one row in the
declarations; a new family is one function and one decorator line, never a change in the
engine's driver::

    @register("reverse")
    def reverse(ctx, step): ...

An operation without a declaration has its own name as its family, so ``@register("Op")``
alone makes an undeclared ``Op`` work.  :data:`RULES` (operation type -> rule) is derived
from the declarations and :data:`FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping

from ..errors import UnsupportedGraphError
from ..graph.operations import COMPOSITE, OPERATIONS, operation
from .step import Context, Step

__all__ = ["Rule", "FAMILIES", "RULES", "COMPOSITE", "register", "rule_for", "family_rule",
           "unsupported"]

Rule = Callable[[Context, Step], None]

#: Backward rule family -> its rule.  :data:`COMPOSITE` is also the family of composite
#: activations (several operations that are one element-wise non-linearity,
#: :func:`mirdeconv.graph.patterns.composite_activations`).
FAMILIES: dict[str, Rule] = {}


def register(*families: str) -> Callable[[Rule], Rule]:
    """Decorator: the function is the backward rule of these families (an undeclared
    operation's family is its own name)."""

    def add(fn: Rule) -> Rule:
        for family in families:
            if family in OPERATIONS:
                raise ValueError(f"{family} is a declared operation (backward family "
                                 f"{OPERATIONS[family].backward}): change its declaration in "
                                 "mirdeconv.graph.operations, or register its family")
            if family in FAMILIES and FAMILIES[family] is not fn:
                raise ValueError(f"a backward rule for {family} is already registered "
                                 f"({FAMILIES[family].__name__})")
            FAMILIES[family] = fn
        return fn

    return add


def unsupported(ctx: Context, step: Step) -> None:
    """The rule of every operation without one: a clear error naming it."""
    raise UnsupportedGraphError(
        f"operation {step.node.op} ({step.node.name}) lies between the input and the layer; "
        "the engine cannot deconvolve through it"
    )


def family_rule(family: str | None) -> Rule:
    """The registered rule of a family (or :func:`unsupported`)."""
    return FAMILIES.get(family, unsupported) if family is not None else unsupported


def rule_for(op: str) -> Rule:
    """The rule of an operation type, through its declaration (or :func:`unsupported`); the
    rules fill the table when :mod:`mirdeconv.engine.rules` is imported."""
    return family_rule(operation(op).backward)


class _Rules(MutableMapping):
    """Operation type -> its backward rule, read through its declaration: a view, the rules
    live in :data:`FAMILIES`.  Setting an item sets the rule of the operation's family
    (every operation of the family gets it); deleting one removes an undeclared operation's
    own family."""

    def __getitem__(self, op: str) -> Rule:
        family = operation(op).backward
        if family not in FAMILIES:
            raise KeyError(op)
        return FAMILIES[family]

    def __setitem__(self, op: str, fn: Rule) -> None:
        family = operation(op).backward
        if family is None:
            raise KeyError(f"{op} is declared without a backward family")
        FAMILIES[family] = fn

    def __delitem__(self, op: str) -> None:
        if op in OPERATIONS:
            raise KeyError(f"{op} is declared; withdraw its declaration instead")
        del FAMILIES[op]

    def __iter__(self) -> Iterator[str]:
        yield from (op for op, row in OPERATIONS.items() if row.backward in FAMILIES)
        named = {row.backward for row in OPERATIONS.values()}
        yield from (f for f in FAMILIES if f not in named and f not in OPERATIONS)

    def __len__(self) -> int:
        return sum(1 for _ in self)


#: Operation type -> its backward rule (derived; see :class:`_Rules`).
RULES: MutableMapping[str, Rule] = _Rules()
