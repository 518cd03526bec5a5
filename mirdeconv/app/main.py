"""The app's script for ``streamlit run`` (what ``mirdeconv app`` serves; the repository's
``streamlit_app.py`` is the same page)."""

from mirdeconv.app.page import run

run()
