"""The README's picture of painting strokes: `bigseg serve STORE --annotate` in Debian's Chromium (Playwright, never a
downloaded browser), zoomed in, one stroke per class drawn with the mouse, saved as a PNG.

    python benchmarks/annotate_screenshot.py STORE docs/img/annotate.png

STORE gets the strokes (use a copy). Its truth, if any, says where each class is: each stroke is drawn inside a
region of its class near the middle of the view.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from viewer_screenshot import chromium_page, served  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("png")
    ap.add_argument("--zoom", type=float, default=3.0)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from bigseg import store as st

    truth = np.asarray(st.open_array(a.store, "truth")[:]) if "truth" in st.open_store(a.store) else None
    with served(a.store, "--annotate") as url, sync_playwright() as p:
        browser, page = chromium_page(p)
        page.goto(url)
        page.wait_for_selector('body[data-loaded="1"]', timeout=60000)
        page.wait_for_selector("#annotate:not([hidden])", timeout=20000)
        page.evaluate(f"bigseg.viewer.viewport.zoomBy({a.zoom}); bigseg.viewer.viewport.applyConstraints()")
        time.sleep(1.0)
        page.wait_for_function("document.body.dataset.loaded === '1'", timeout=60000)
        page.evaluate("() => { const o = document.getElementById('opacity'); o.value = 35; "
                      "o.dispatchEvent(new Event('input')); }")
        centre = page.evaluate("""() => { const v = bigseg.viewer, c = v.viewport.getCenter();
            const p = v.viewport.viewportToImageCoordinates(c); return [p.x, p.y]; }""")
        for cls in (0, 1, 2):
            path = _inside(truth, cls, centre) if truth is not None else None
            if path is None:
                continue
            page.click(f'#tools button[data-tool="{cls}"]')
            pts = [page.evaluate("""([x, y]) => { const v = bigseg.viewer, r = v.container.getBoundingClientRect();
                const p = v.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
                return [r.left + p.x, r.top + p.y]; }""", list(q)) for q in path]
            page.mouse.move(*pts[0])
            page.mouse.down()
            for q in pts[1:]:
                page.mouse.move(*q, steps=6)
            page.mouse.up()
            time.sleep(0.8)
        page.click('#tools button[data-tool="2"]')
        page.wait_for_function("document.getElementById('painted').dataset.saving === '0'", timeout=30000)
        time.sleep(2.0)
        page.wait_for_function("document.body.dataset.loaded === '1'", timeout=60000)
        page.screenshot(path=a.png)
        browser.close()
    print(f"wrote {a.png}")


def _inside(truth: np.ndarray, cls: int, centre) -> list | None:
    """A short path of image points inside a region of ``cls`` near ``centre``, or None."""
    from scipy import ndimage

    room = ndimage.binary_erosion(truth == cls, iterations=6)
    ys, xs = np.nonzero(room)
    if not len(ys):
        return None
    k = int(np.argmin((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2))
    y, x = int(ys[k]), int(xs[k])
    path = [(x, y)]
    for dx in range(4, 60, 4):  # rightwards while inside
        if x + dx < truth.shape[1] and room[y, x + dx]:
            path.append((x + dx, y))
        else:
            break
    return path if len(path) > 1 else [(x, y), (x + 1, y)]


if __name__ == "__main__":
    main()
