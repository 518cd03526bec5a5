"""One meaning per name (issue 31): renamed public names still answer, with a warning, and
the library's identifiers keep one spelling."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

import mirdeconv

LIBRARY = Path(mirdeconv.__file__).parent


def _identifiers(tree: ast.AST):
    """Every name the code binds or reads: variables, attributes, functions, classes,
    arguments, keywords, imported names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, ast.arg):
            yield node.arg
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.arg
        elif isinstance(node, ast.alias):
            yield node.name
            if node.asname:
                yield node.asname


def test_normalize_is_spelt_one_way_in_identifiers():
    bad = []
    for path in sorted(LIBRARY.rglob("*.py")):
        for name in _identifiers(ast.parse(path.read_text(), str(path))):
            if "normalis" in name.lower():
                bad.append(f"{path.relative_to(LIBRARY)}: {name}")
    assert not bad, "identifiers spell normalize the American way (docs/design.md, Names):\n" \
        + "\n".join(bad)


def test_normalise_is_a_deprecated_alias_of_normalize():
    from mirdeconv import auralisation
    y = np.array([[0.0, 0.5, -0.25]], dtype=np.float32)
    new = auralisation.normalize(y, 16000, "peak")
    with pytest.warns(DeprecationWarning, match="normalize"):
        old = auralisation.normalise
    assert old is auralisation.normalize
    np.testing.assert_array_equal(old(y, 16000, "peak"), new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from mirdeconv.auralisation import normalize  # noqa: F401  (no warning)


@pytest.mark.parametrize("module", ["mirdeconv.explanations.targets", "mirdeconv.explanations"])
@pytest.mark.parametrize("old, new", [("OutputTarget", "ExplainedOutput"),
                                      ("output_target", "explained_output")])
def test_output_target_is_a_deprecated_alias_of_explained_output(module, old, new):
    import importlib
    mod = importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        current = getattr(mod, new)
    with pytest.warns(DeprecationWarning, match=new):
        assert getattr(mod, old) is current
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018



def test_rule_means_only_a_backward_rule():
    """The attribution row's backward method, the options' method row and the label rules
    have their own names; the old ones still answer, with a DeprecationWarning."""
    from mirdeconv.analysis import labels
    from mirdeconv.explanations import ATTRIBUTIONS
    from mirdeconv.options import METHODS, DeconvOptions

    row = ATTRIBUTIONS["integrated_gradients"]
    assert row.backward_method == "saliency"
    with pytest.warns(DeprecationWarning, match="backward_method"):
        assert row.rule == "saliency"
    opts = DeconvOptions(method="guided")
    assert opts.method_row is METHODS["guided"]
    with pytest.warns(DeprecationWarning, match="method_row"):
        assert opts.rule is METHODS["guided"]
    with pytest.warns(DeprecationWarning, match="LABEL_RULES"):
        assert labels.RULES is labels.LABEL_RULES


def test_settings_copies_and_the_old_samples():
    """SmoothGrad's noisy copies are ``copies`` (``samples`` means audio samples only); an
    ``explanation.json`` written with ``samples`` still reads."""
    import dataclasses

    from mirdeconv.explanations import ExplainOptions, Settings

    s = Settings(copies=5)
    assert dataclasses.asdict(s) == {"steps": 32, "copies": 5, "noise": 0.15, "seed": 0}
    assert ExplainOptions().copies == Settings().copies
    with pytest.warns(DeprecationWarning, match="copies"):
        assert s.samples == 5
    with pytest.warns(DeprecationWarning, match="copies"):
        assert Settings(samples=5) == s
    assert Settings() == Settings(32, 16, 0.15, 0) and Settings().copies == 16
    assert Settings.from_dict(dataclasses.asdict(s)) == s
    assert Settings.from_dict({"steps": 32, "samples": 5, "noise": 0.15, "seed": 0}) == s


def test_the_sanity_checks_read_the_method_tables_when_called(monkeypatch):
    import inspect

    from mirdeconv.explanations import ATTRIBUTIONS, ExplainOptions
    from mirdeconv.options import METHODS
    from mirdeconv.sanity import DECONVOLUTION_METHODS, EXPLANATION_METHODS, explanation_cascade

    assert tuple(EXPLANATION_METHODS) == tuple(ATTRIBUTIONS)
    assert tuple(DECONVOLUTION_METHODS) == tuple(METHODS)
    monkeypatch.setitem(ATTRIBUTIONS, "doubled", ATTRIBUTIONS["saliency"])
    assert "doubled" in EXPLANATION_METHODS and EXPLANATION_METHODS[-1] == "doubled"
    assert len(EXPLANATION_METHODS) == len(ATTRIBUTIONS)
    default = inspect.signature(explanation_cascade).parameters["output"].default
    assert default == ExplainOptions.output
