"""One declaration per operation (issue 31): every operation type's facts are one row of
:data:`mirdeconv.graph.operations.OPERATIONS`; nothing else in the library names it."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import mirdeconv
from mirdeconv.engine import FAMILIES, RULES, rules  # noqa: F401  (rules fill FAMILIES)
from mirdeconv.engine.table import unsupported
from mirdeconv.errors import UnsupportedGraphError
from mirdeconv.graph import AXIS_FAMILIES, AXIS_RULES, ops
from mirdeconv.graph.operations import (
    NONLINEAR,
    NONLINEAR_OPS,
    OPERATIONS,
    TIME_AGNOSTIC_OPS,
    Kind,
    Operation,
    declare,
    operation,
    withdraw,
)
from mirdeconv.representations import LinearSpectrogram

from .conftest import tone_track
from .references import saliency_of_unit

PACKAGE = pathlib.Path(mirdeconv.__file__).parent
DECLARATIONS = "graph/operations.py"

#: Files that may hold a string equal to a declared operation's name, and why.
ALLOWED = {
    "adapters/onnx_prep.py": "ONNX operator types (ONNX's vocabulary, not TensorFlow's)",
    "adapters/keras.py": "Keras layer class names (Conv2D, Add, Reshape layers)",
    "adapters/onnx_model.py": "follows an output's Identity; outside this change (follow-up)",
    "zoo.py": "the 'op' field of an Essentia model JSON document it writes",
    "options.py": "'Sign' is the label of the sign option, not an operation",
}


def test_every_declared_operation_is_complete():
    """Each row: a kind, an axes family the graph knows, a time-agnostic flag, and a
    backward family the engine knows (or None: refused by name)."""
    assert len(OPERATIONS) > 60
    for name, row in OPERATIONS.items():
        assert row.name == name and isinstance(row.kind, Kind) and row.kind is not Kind.UNDECLARED
        assert isinstance(row.time_agnostic, bool)
        assert row.axes in AXIS_FAMILIES, f"{name}: axes family {row.axes} has no rule"
        assert row.backward is None or row.backward in FAMILIES, \
            f"{name}: backward family {row.backward} has no rule"
        if row.kind is Kind.NONLINEAR:
            assert row.backward == NONLINEAR and callable(row.derivative)
    # families are not operation names: an undeclared operation's family is its own name
    assert not (set(FAMILIES) | set(AXIS_FAMILIES)) & set(OPERATIONS)


def test_the_old_tables_are_derived_from_the_rows():
    assert NONLINEAR_OPS == {n for n, r in OPERATIONS.items() if r.kind is Kind.NONLINEAR}
    assert TIME_AGNOSTIC_OPS == {n for n, r in OPERATIONS.items() if r.time_agnostic}
    assert ops.NONLINEAR_OPS is NONLINEAR_OPS
    for name, row in OPERATIONS.items():
        if row.backward is not None:
            assert RULES[name] is FAMILIES[row.backward]
        else:
            assert name not in RULES
        assert AXIS_RULES[name] is AXIS_FAMILIES[row.axes]
    assert operation("NoSuchOp").backward == "NoSuchOp"
    assert operation("NoSuchOp").kind is Kind.UNDECLARED and not operation("NoSuchOp").time_agnostic


def _string_literals(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_operation_is_named_outside_its_declaration():
    """An AST scan of the library: no string equal to a declared operation's name outside
    the declarations (but the files of :data:`ALLOWED`, each for its reason)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == DECLARATIONS or rel in ALLOWED:
            continue
        found += [f"{rel}:{line}: {value!r}" for line, value in _string_literals(path)
                  if value in OPERATIONS]
    assert not found, "operation names typed outside graph/operations.py:\n" + "\n".join(found)
    for rel in ALLOWED:                       # the allow-list holds no stale entries
        assert any(v in OPERATIONS for _, v in _string_literals(PACKAGE / rel)), rel


REP = LinearSpectrogram(sr=8000, n_fft=64, hop_length=32)   # 33 bins


def _atan_net(keras):
    keras.utils.set_random_seed(5)
    L = keras.layers
    inp = keras.Input((33, None, 1))
    x = L.Conv2D(4, 3, padding="same", name="c")(inp)
    x = keras.ops.arctan(x)                             # TensorFlow's Atan: not declared
    return keras.Model(inp, L.MaxPooling2D(2, name="p")(x))


def test_a_new_operation_is_one_declaration(keras):
    """Atan is not declared: refused by name.  One row (a non-linearity with its derivative)
    makes the engine deconvolve through it, as TensorFlow's own gradient does, and the
    graph trace call the layer time-agnostic; nothing else is registered anywhere."""
    net = _atan_net(keras)
    y = tone_track(8000, 1.0)
    assert "Atan" not in OPERATIONS and RULES.get("Atan") is None
    with pytest.raises(UnsupportedGraphError, match="operation Atan .* cannot deconvolve"):
        mirdeconv.deconvolve(mirdeconv.load_model(net, representation=REP), y, 8000, layer="p")

    declare(Operation("Atan", Kind.NONLINEAR, backward=NONLINEAR, time_agnostic=True,
                      derivative=lambda tf, x, y, alpha: 1.0 / (1.0 + x * x)))
    try:
        assert "Atan" in NONLINEAR_OPS and "Atan" in TIME_AGNOSTIC_OPS
        m = mirdeconv.load_model(net, representation=REP)
        assert m.layer("p").time_agnostic
        res = mirdeconv.deconvolve(m, y, 8000, layer="p", method="saliency", features=[1])
        want = saliency_of_unit(net, m, res, 1)
        np.testing.assert_allclose(res.masks[0], want, atol=1e-5 * np.abs(want).max())
    finally:
        withdraw("Atan")
    assert "Atan" not in NONLINEAR_OPS and RULES.get("Atan") is None


def test_a_declared_operation_is_not_registered_by_name():
    """A rule registered under a declared operation's name would never be read: refused."""
    from mirdeconv.engine import register
    from mirdeconv.graph import axis_rule

    with pytest.raises(ValueError, match="Relu is a declared operation .*nonlinear"):
        register("Relu")(lambda ctx, step: None)
    with pytest.raises(ValueError, match="Squeeze is a declared operation .*squeeze"):
        axis_rule("Squeeze")(lambda t: None)


def test_a_declared_operation_without_a_rule_is_refused_by_name():
    assert OPERATIONS["Conv3D"].backward is None
    from mirdeconv.engine.table import rule_for

    assert rule_for("Conv3D") is unsupported and rule_for("NoSuchOp") is unsupported
