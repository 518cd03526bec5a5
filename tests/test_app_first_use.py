"""The app on a model's first use: what it says while it prepares, and pickers that fit."""

from __future__ import annotations

import pytest

from mirdeconv.app import logic

from .conftest import ROOT

#: The sidebar's picker cut labels off past about this many characters (measured in Chromium
#: at Streamlit's default sidebar width: "3CNN (128 features, receptive fiel" was cut).
PICKER_CHARS = 30


@pytest.mark.slow
def test_a_models_first_opening_says_so_and_the_layer_labels_fit(zoo_cache):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from mirdeconv.app.model_view import _view_file

    _view_file(logic.DEFAULT_MODEL).unlink(missing_ok=True)        # never opened on this machine
    st.cache_resource.clear()                                       # ... by a fresh server
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600).run()
    assert not at.exception and not at.error
    boxes = [s for s in at.status if logic.DEFAULT_MODEL in s.label]
    assert len(boxes) == 1 and boxes[0].state == "complete"
    assert boxes[0].label == f"{logic.DEFAULT_MODEL} is ready: next time it opens at once"
    steps = [m.value for m in boxes[0].markdown]
    assert steps == ["opening the model (TensorFlow starts) ..."]

    labels = at.selectbox(key="layer").options                       # whole, and short
    assert len(labels) == 5 and max(map(len, labels)) <= PICKER_CHARS
    assert labels[2].startswith("3CNN · 128 · ") and labels[2].endswith(" s")
    assert any(c.value.startswith("3CNN: 128 features, receptive field ") for c in at.caption)

    again = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600).run()
    assert not again.exception                                       # kept: no preparation
    assert not [s for s in again.status if logic.DEFAULT_MODEL in s.label]
