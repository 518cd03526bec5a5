"""The README's two commands stay true, and CI runs the README's test command."""

from __future__ import annotations

import re

from .conftest import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_ci_runs_the_readme_test_command():
    app_cmd, test_cmd = _commands()
    assert "pytest" in test_cmd and "pip install" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci, "the README's test command is not a line of .ci/run"
    assert "MIRDECONV_REQUIRE_SHARED=1" in (ROOT / ".ci" / "run").read_text()


def test_readme_first_command_runs_the_app():
    app_cmd, _ = _commands()
    assert app_cmd.startswith("python3 -m venv .venv && .venv/bin/pip install -e .")
    assert app_cmd.endswith(".venv/bin/streamlit run streamlit_app.py")
    assert (ROOT / "streamlit_app.py").is_file() and (ROOT / "docs" / "app.png").is_file()
