"""The viewer page in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser). The page
loads, tiles appear, zooming in asks for deeper levels, the screenshot has the class colours where the store has
the classes, the legend, scale bar and pointer read-out say what they should, and switching layers works."""

from __future__ import annotations

import os
import re
import shutil
import time

import numpy as np
import pytest
from serve_fixtures import H, Server, W, make_quad_store

from bigseg.classes import CONCRETE


def _chromium() -> str:
    path = os.environ.get("BIGSEG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; or set BIGSEG_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return path


@pytest.fixture(scope="module")
def page_on_quad(tmp_path_factory):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    store = make_quad_store(tmp_path_factory.mktemp("browser"))
    server = Server(store)
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        _wait_loaded(page, errors)
        try:
            yield page, requests, errors, server
        finally:
            browser.close()
            server.stop()


def _screen_point(page, x: float, y: float) -> tuple[int, int]:
    """Page coordinates of image pixel (x, y)."""
    return tuple(page.evaluate(
        """([x, y]) => { const v = bigseg.viewer, r = v.container.getBoundingClientRect();
           const p = v.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
           return [Math.round(r.left + p.x), Math.round(r.top + p.y)]; }""", [x, y]))


def _levels(requests, layer) -> set[int]:
    return {int(m[1]) for u in requests if (m := re.search(rf"/{layer}_files/(\d+)/", u))}


def _wait_loaded(page, errors: list[str] | None = None):
    """Until every layer on screen has its tiles; if that does not come, a failure that says what the page had:
    its script errors and which layers were still loading."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("document.body.dataset.loaded === '1'", timeout=60000)
    except PlaywrightTimeout:
        layers = page.evaluate("""() => { const w = bigseg.viewer.world, r = [];
            for (let i = 0; i < w.getItemCount(); i++) r.push(w.getItemAt(i).getFullyLoaded()); return r; }""")
        pytest.fail(f"the page did not finish loading in 60 s: layers fully loaded {layers}, script errors "
                    f"{errors or 'none'}")


def _wait_for_tiles(page, requests, layer, level: int | None = None, timeout_s: float = 60) -> set[int]:
    """The levels of ``layer`` the page has asked for, once it has asked for any (or for ``level``): a zoom or a
    layer switch is not followed by a reset of ``data-loaded`` in a fixed time on a busy machine, so waiting on that
    alone can look too early."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = _levels(requests, layer)
        if (level in got) if level is not None else got:
            break
        page.wait_for_timeout(100)  # lets Playwright deliver the page's request events
    return _levels(requests, layer)


def test_page_loads_with_tiles_legend_and_scale(page_on_quad):
    page, requests, errors, _ = page_on_quad
    assert not errors
    assert _levels(requests, "image") and _levels(requests, "labels")
    legend = page.inner_text("#legend")
    for c in CONCRETE:
        assert c.name in legend
    # the labels' fractions of the labelled three quarters: a third each, the wrong square moved from paste to void
    for name, frac in (("paste", (W * H / 4 - 200**2) / (W * H * 3 / 4)), ("stone", 1 / 3),
                       ("void", (W * H / 4 + 200**2) / (W * H * 3 / 4))):
        assert re.search(rf"{name}\s+{100 * frac:.1f} %", legend), (name, legend)
    assert re.search(r"^\d+(\.\d+)? (mm|µm)$", page.inner_text("#scalebar-text")), page.inner_text("#scalebar-text")
    assert "3,000 × 2,000 px" in page.inner_text("#status") and "30.0 × 20.0 mm" in page.inner_text("#status")


def test_screenshot_has_the_class_colours_where_the_classes_are(page_on_quad, tmp_path):
    page, *_ = page_on_quad
    page.evaluate("""() => { const o = document.getElementById('opacity'); o.value = 100;
                             o.dispatchEvent(new Event('input')); }""")
    page.wait_for_timeout(300)
    shot = tmp_path / "viewer.png"
    page.screenshot(path=str(shot))
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    colours = {c.id: c.color for c in CONCRETE}
    for (x, y), cls in (((W // 4, H // 5), 0), ((3 * W // 4, H // 4), 1), ((W // 4, 3 * H // 4), 2),
                        ((600, 600), 2)):  # (600, 600): the wrong square, void in the labels
        sx, sy = _screen_point(page, x, y)
        got = img[sy - 2 : sy + 3, sx - 2 : sx + 3].reshape(-1, 3).mean(axis=0)
        assert np.abs(got - colours[cls]).max() < 6, ((x, y), cls, got)
    sx, sy = _screen_point(page, 3 * W // 4, 3 * H // 4)  # unlabelled: the image shows through (its light grey)
    assert np.abs(img[sy, sx] - (230, 230, 230)).max() < 8, img[sy, sx]


def test_pointer_shows_position_classes_and_confidence(page_on_quad):
    page, *_ = page_on_quad
    sx, sy = _screen_point(page, 600, 650)
    page.mouse.move(sx, sy)
    page.wait_for_function("document.getElementById('cursor').innerText.includes('labels')", timeout=20000)
    text = page.inner_text("#cursor")
    assert "labels: void" in text and "truth: paste" in text and "confidence" in text, text
    x, y = map(int, re.search(r"x (\d+), y (\d+) px", text).groups())
    assert abs(x - 600) <= 3 and abs(y - 650) <= 3, text
    assert re.search(r"6\.\d{3}, 6\.\d{3} mm", text), text


def test_zooming_in_asks_for_deeper_levels_and_layers_switch(page_on_quad):
    page, requests, errors, _ = page_on_quad
    before = max(_levels(requests, "labels"))
    page.evaluate("() => { const v = bigseg.viewer; v.viewport.zoomBy(16, v.viewport.getCenter(), true); }")
    after = max(_wait_for_tiles(page, requests, "labels", level=12))
    _wait_loaded(page)
    assert before < 12 and after == 12, (before, after)  # the full resolution only once zoomed in
    page.select_option("#layer", "errors")
    assert _wait_for_tiles(page, requests, "errors")
    _wait_loaded(page)
    assert "labels differ from the truth" in page.inner_text("#legend")
    page.select_option("#layer", "confidence")
    _wait_loaded(page)
    assert "mean" in page.inner_text("#legend") or "0.75" in page.inner_text("#legend")
    page.click("#home")
    assert not errors
