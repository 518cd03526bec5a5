"""The rule table: one backward rule per graph operation type.

A rule is a small function ``rule(ctx, step) -> None`` that fills ``step.save`` (what the
forward pass records) and ``step.rule`` (and, when the rule works channel by channel,
``step.compact_rule``).  Rules enter the table with :func:`register`; a new operation costs
one function and one decorator line, never a change in the engine's driver::

    @register("Softsign")
    def softsign(ctx, step): ...
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnsupportedGraphError
from .step import Context, Step

__all__ = ["Rule", "RULES", "COMPOSITE", "register", "rule_for", "unsupported"]

#: The table's key for composite activations (several operations that are one element-wise
#: non-linearity, :func:`mirdeconv.graph.patterns.composite_activations`).
COMPOSITE = "_composite_activation"

Rule = Callable[[Context, Step], None]

#: Operation type -> its backward rule.
RULES: dict[str, Rule] = {}


def register(*ops: str) -> Callable[[Rule], Rule]:
    """Decorator: the function is the backward rule of these operation types."""

    def add(fn: Rule) -> Rule:
        for op in ops:
            if op in RULES and RULES[op] is not fn:
                raise ValueError(f"a backward rule for {op} is already registered ({RULES[op].__name__})")
            RULES[op] = fn
        return fn

    return add


def unsupported(ctx: Context, step: Step) -> None:
    """The rule of every operation without one: a clear error naming it."""
    raise UnsupportedGraphError(
        f"operation {step.node.op} ({step.node.name}) lies between the input and the layer; "
        "the engine cannot deconvolve through it"
    )


def rule_for(op: str) -> Rule:
    """The registered rule of an operation type (or :func:`unsupported`); the rules fill the
    table when :mod:`mirdeconv.engine.rules` is imported."""
    return RULES.get(op, unsupported)
