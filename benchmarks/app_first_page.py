"""How long the app's first page takes in a real browser: on first use (an empty cache), from
a fresh server, and warm.

Starts ``streamlit run streamlit_app.py`` (headless, a free port) with ``MIRDECONV_CACHE`` set
to a new empty folder, opens it in Debian's Chromium through Playwright and prints, in
seconds from the page request: the title, the "Preparing ... (once)" message (the default
zoo model is converted from the musicnn package on first use), the layer picker (the model
opened), the first feature's picture (its deconvolution, descriptors and figure); then the
same picture after a reload of the page (a warm server); then a second fresh server on the
same, now full, cache: its title and first picture.  Side by side, the same work in this
process (open the model, deconvolve one feature, describe it, draw it), so the app's own
overhead shows as a ratio.

The last line is for scripts: ``app first page: preparation message N.N s, first picture
M.M s on first use, K.K s on a fresh server``.

Run: python benchmarks/app_first_page.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_times(chromium: str, cache: Path, first_use: bool) -> dict[str, float]:
    """Seconds to the title, the preparation message (first use), the layer picker, the
    first picture, and the picture on reload."""
    from playwright.sync_api import sync_playwright

    port = _port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MIRDECONV_CACHE=str(cache)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        out = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("what does each feature map hear?").wait_for(timeout=300_000)
            out["title"] = time.perf_counter() - t0
            if first_use:
                page.get_by_text("(once)").first.wait_for(timeout=300_000)
                out["preparation message"] = time.perf_counter() - t0
            page.get_by_role("combobox", name="Layer").wait_for(timeout=300_000)
            out["layer picker"] = time.perf_counter() - t0
            page.locator("[data-testid='stImage'] img").first.wait_for(timeout=300_000)
            out["first picture"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            page.goto(url, wait_until="domcontentloaded")
            page.locator("[data-testid='stImage'] img").first.wait_for(timeout=300_000)
            out["reload (warm)"] = time.perf_counter() - t0
            browser.close()
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)


def in_process() -> float:
    """The first page's work without the app: open, deconvolve one feature, describe, draw."""
    t0 = time.perf_counter()
    from mirdeconv.app import logic

    model = logic.open_model(logic.DEFAULT_MODEL)
    y, sr = logic.demo_audio(next(iter(logic.DEMO_TRACKS)))
    res = logic.layer_result(model, y, sr, model.layers[min(2, len(model.layers) - 1)].name,
                             features=[0])
    logic.layer_descriptors(res, y, sr)
    audio, out_sr, _ = logic.feature_sound(res, 0, y, sr)
    logic.figure_png(logic.feature_figure(res, 0, audio, out_sr))
    return time.perf_counter() - t0


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mirdeconv-app-cache-") as cache:
        first = browser_times(args.chromium, Path(cache), first_use=True)
        again = browser_times(args.chromium, Path(cache), first_use=False)
        work = subprocess.run([sys.executable, "-c", "from benchmarks.app_first_page import "
                               "in_process; print(in_process())"], cwd=ROOT, capture_output=True,
                              text=True, check=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MIRDECONV_CACHE=cache))
    alone = float(work.stdout.strip().splitlines()[-1])
    print("| step | seconds | vs the same work in one process |")
    print("|---|---:|---:|")
    for when, times in (("first use, empty cache", first), ("fresh server, cache kept", again)):
        for k, v in times.items():
            ratio = f"{v / alone:.2f}x" if k in ("first picture", "reload (warm)") else ""
            print(f"| {when}: {k} | {v:.1f} | {ratio} |")
    print(f"| in one process (fresh: imports, model, 1 feature, descriptors, figure) | "
          f"{alone:.1f} | 1.00x |")
    print(f"app first page: preparation message {first['preparation message']:.1f} s, first "
          f"picture {first['first picture']:.1f} s on first use, {again['first picture']:.1f} s "
          "on a fresh server")


if __name__ == "__main__":
    main()
