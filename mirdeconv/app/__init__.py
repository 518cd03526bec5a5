"""The Streamlit front end (``streamlit run streamlit_app.py``).

:mod:`mirdeconv.app.logic` holds everything the page computes (no Streamlit in it, so it is
tested and benchmarked on its own); :mod:`mirdeconv.app.page` draws the page.
"""
