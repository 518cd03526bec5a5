"""The app in a real browser: streamlit run + headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cmd: list[str], port: int, env: dict):
    """Start a server and wait until Streamlit answers its health check; yields the URL."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def server(tmp_path, zoo_cache):
    if not os.path.exists(CHROMIUM):
        msg = "Debian chromium is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("MIRDECONV_REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    port = _free_port()
    env = dict(os.environ, MIRDECONV_CACHE=str(zoo_cache[0]), TF_CPP_MIN_LOG_LEVEL="3")
    yield from _serve([sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
                       "--server.port", str(port), "--server.address", "127.0.0.1",
                       "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                      port, env)


def test_mirdeconv_app_serves_the_page(zoo_cache):
    """``mirdeconv app`` (what a wheel user runs) serves the same page."""
    port = _free_port()
    env = dict(os.environ, MIRDECONV_CACHE=str(zoo_cache[0]))
    for url in _serve([sys.executable, "-m", "mirdeconv.cli", "app", "--port", str(port),
                       "--address", "127.0.0.1"], port, env):
        page = urllib.request.urlopen(url + "/", timeout=10).read().decode()
        assert "<title>Streamlit</title>" in page or "streamlit" in page.lower()


def _settled(page, timeout=240_000):
    """Wait until Streamlit has finished the rerun: no element is marked stale."""
    page.wait_for_timeout(500)
    page.wait_for_function("document.querySelectorAll('[data-stale=\"true\"]').length === 0 && "
                           "!document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=timeout)


def test_pick_a_layer_and_a_feature_in_chromium(server):
    from playwright.sync_api import sync_playwright

    shots = ROOT / "tests" / "artifacts"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_text("what does each feature map hear?").wait_for(timeout=120_000)
        # wait for the first result: a feature's pictures and players
        page.locator("[data-testid='stImage'] img").first.wait_for(timeout=240_000)
        # pick another layer
        page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").nth(1).click()
        page.get_by_role("option").filter(has_text="2CNN").click()
        page.get_by_text("Feature 0").first.wait_for(timeout=240_000)
        _settled(page)
        # pick another feature
        box = page.locator("[data-testid='stSidebar'] input[type='number']")
        box.fill("1")
        box.press("Enter")
        page.get_by_text("Feature 1").first.wait_for(timeout=120_000)
        _settled(page)
        page.locator("audio").first.wait_for(state="attached", timeout=60_000)
        assert page.locator("audio").count() >= 2
        assert page.locator("[data-testid='stImage'] img").count() >= 1
        assert page.get_by_text("What it detects:").count() >= 1
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator("[data-testid='stAlertContentError']").count() == 0
        assert "2CNN" in page.locator("[data-testid='stCaptionContainer']").first.inner_text()
        page.screenshot(path=str(shots / "app.png"), full_page=False)
        browser.close()
    assert (shots / "app.png").stat().st_size > 10_000


def test_two_sessions_at_once_keep_to_themselves(server, tmp_path):
    """Two browser contexts at once: each sees only its own upload and its own result; a
    25-minute upload is refused clearly in one while the other goes on working."""
    import numpy as np
    import soundfile as sf
    from playwright.sync_api import expect, sync_playwright

    sr = 8000
    t = np.arange(20 * sr) / sr
    sf.write(tmp_path / "alice_tone.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)
    sf.write(tmp_path / "bob_chirp.wav", (0.3 * np.sin(2 * np.pi * 200 * t * (1 + t / 20))
                                          ).astype(np.float32), sr)
    long = np.tile((0.2 * np.sin(2 * np.pi * 220 * t[:sr])).astype(np.float32), 25 * 60)
    sf.write(tmp_path / "alice_set.wav", long, sr, subtype="PCM_16")      # 25 min, 24 MB

    def upload(page, name):
        page.locator("[data-testid='stSidebar'] input[type='file']").first.set_input_files(
            str(tmp_path / name))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        alice, bob = (browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                      for _ in range(2))
        for page in (alice, bob):
            page.goto(server, wait_until="domcontentloaded")
        for page in (alice, bob):
            page.locator("[data-testid='stImage'] img").first.wait_for(timeout=240_000)
        upload(alice, "alice_tone.wav")
        upload(bob, "bob_chirp.wav")
        for page, mine, theirs in ((alice, "alice_tone", "bob_chirp"),
                                   (bob, "bob_chirp", "alice_tone")):
            expect(page.get_by_role("combobox", name="Track")).to_have_value(
                f"upload: {mine}.wav", timeout=120_000)                     # chosen at once
            _settled(page)
            page.get_by_text("Feature 0").first.wait_for(timeout=240_000)
            assert theirs not in page.content()
            assert page.locator("[data-testid='stException']").count() == 0
        upload(alice, "alice_set.wav")                 # refused, and bob keeps working
        box = bob.locator("[data-testid='stSidebar'] input[type='number']")
        box.fill("3")
        box.press("Enter")
        alice.get_by_text("minutes long; the app takes tracks up to").first.wait_for(
            timeout=120_000)
        bob.get_by_text("Feature 3").first.wait_for(timeout=240_000)
        _settled(bob)
        assert "bob_chirp" in bob.content() and "alice" not in bob.content()
        assert "bob_chirp" not in alice.content()
        for page in (alice, bob):
            assert page.locator("[data-testid='stException']").count() == 0
        browser.close()


def test_explain_a_tag_in_chromium(server):
    """The Tags tab in a real browser: switch it on, pick the second tag, hear the
    explanation and its complement, see the picture and the faithfulness figures."""
    from playwright.sync_api import sync_playwright

    shots = ROOT / "tests" / "artifacts"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(server, wait_until="domcontentloaded")
        page.locator("[data-testid='stImage'] img").first.wait_for(timeout=240_000)
        _settled(page)
        page.get_by_role("tab", name="Tags").click()
        page.get_by_text("Explain the model's tags for this track").click()
        panel = page.get_by_role("tabpanel", name="Tags")
        panel.get_by_text("Its complement").wait_for(timeout=240_000)
        _settled(page)
        panel.get_by_role("combobox", name="Tag").click()
        second = page.get_by_role("option").nth(1)
        tag = second.inner_text().rsplit(" (", 1)[0]
        second.click()
        page.get_by_text(f"mtt-vgg: {tag}, logit").wait_for(timeout=240_000)
        _settled(page)
        assert panel.locator("audio").count() == 2
        assert panel.locator("[data-testid='stImage'] img").count() == 1
        table = panel.locator("[data-testid='stDataFrame']")
        assert table.count() == 1 and table.first.is_visible()
        assert panel.get_by_role("button", name="sanity check").count() == 1
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(shots / "tags_view.png"), full_page=True)
        browser.close()
