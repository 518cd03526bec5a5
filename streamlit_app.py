"""mirdeconv's app: ``streamlit run streamlit_app.py``."""

from mirdeconv.app.page import run

run()
