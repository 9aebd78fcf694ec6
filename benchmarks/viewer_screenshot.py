"""The README's picture of the viewer: `bigseg serve` over a store, opened in Debian's Chromium (Playwright, never a
downloaded browser), zoomed onto part of the slab, pointer over a void so the read-out shows, saved as a PNG.

    python benchmarks/viewer_screenshot.py demo-output/slab.zarr docs/img/viewer.png
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request


@contextlib.contextmanager
def served(store: str, *args: str):
    """``bigseg serve STORE ARGS`` on a free port until the block ends; yields its URL once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bigseg", "serve", store, "--port", str(port), *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait()


def chromium_page(p):
    """A 1280 x 760 page in Debian's Chromium (never a downloaded browser)."""
    browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
    return browser, browser.new_page(viewport={"width": 1280, "height": 760})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("png")
    ap.add_argument("--zoom", type=float, default=2.5)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with served(a.store) as url, sync_playwright() as p:
        browser, page = chromium_page(p)
        page.goto(url)
        page.wait_for_selector('body[data-loaded="1"]', timeout=60000)
        page.evaluate(f"bigseg.viewer.viewport.zoomBy({a.zoom}); bigseg.viewer.viewport.applyConstraints()")
        time.sleep(1.0)
        page.wait_for_function("document.body.dataset.loaded === '1'", timeout=60000)
        box = page.locator("#viewer").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5)
        time.sleep(1.5)
        page.screenshot(path=a.png)
        browser.close()
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
