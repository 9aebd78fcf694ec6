"""Painting strokes in the viewer (``bigseg serve --annotate``), in a real browser: Debian's Chromium driven by
Playwright. Strokes drawn with the mouse land in the store's annotations where they were drawn, with their class;
undo takes the last one back; the eraser clears; two tabs painting the same chunk at once lose nothing; the
strokes show on screen from the annotations' tiles; a service started without --annotate refuses writes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from serve_fixtures import Server, make_quad_store, wait_until
from test_viewer_browser import _chromium, _screen_point, _wait_loaded

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.classes import CONCRETE


def _annotations(store) -> np.ndarray:
    return np.asarray(st.open_array(store, ann.LAYER)[:])


@pytest.fixture(scope="module")
def painting(tmp_path_factory):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    store = make_quad_store(tmp_path_factory.mktemp("annotate"))
    server = Server(store, args=["--annotate"])
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        _wait_loaded(page, errors)
        page.wait_for_selector("#annotate:not([hidden])", timeout=20000)
        try:
            yield page, store, server, errors, browser
        finally:
            browser.close()
            server.stop()


def _saved(page, strokes: int):
    page.wait_for_function(f"""() => {{ const b = document.getElementById('painted');
        return b.dataset.strokes === '{strokes}' && b.dataset.saving === '0'; }}""", timeout=30000)


def _drag(page, points, steps=8):
    sx, sy = _screen_point(page, *points[0])
    page.mouse.move(sx, sy)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*_screen_point(page, x, y), steps=steps)
    page.mouse.up()


def _brush_px(page) -> float:
    return float(page.inner_text("#brush-px").split()[0])


def test_strokes_painted_with_the_mouse_land_in_the_store(painting, tmp_path):
    page, store, server, errors, _ = painting
    assert "painting strokes" in server.first_line
    page.click('#tools button[data-tool="2"]')  # void, in the paste quadrant
    assert page.get_attribute('#tools button[data-tool="2"]', "aria-pressed") == "true"
    _drag(page, [(300, 400), (1100, 400)])
    _saved(page, 1)
    a = _annotations(store)
    width = _brush_px(page)
    painted = np.argwhere(a == 2)
    assert len(painted) and set(np.unique(a)) == {2, 255}
    # along the line drawn, as wide as the brush, nowhere else (a few px of mouse rounding)
    assert abs(painted[:, 0].mean() - 400) < 3
    assert painted[:, 1].min() < 300 and painted[:, 1].max() > 1095
    assert 0.6 * width <= np.ptp(painted[:, 0]) + 1 <= width + 4, (np.ptp(painted[:, 0]), width)
    summary = ann.summary(store)
    assert summary["painted"]["void"] == len(painted) and summary["strokes"] == 1
    assert "void" in page.inner_text("#painted") and f"{len(painted):,}" in page.inner_text("#painted")
    # the stroke is on screen in the void colour, drawn from the store's tiles (the canvas is cleared once they are)
    page.wait_for_function("Number(document.body.dataset.strokes || 0) >= 1", timeout=30000)
    _wait_loaded(page)
    page.wait_for_timeout(300)
    shot = tmp_path / "painted.png"
    page.screenshot(path=str(shot))
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    sx, sy = _screen_point(page, 700, 400)
    void = np.array(CONCRETE[2].color)
    assert np.abs(img[sy, sx] - void).max() < 60, img[sy, sx]  # 0.85 opaque over the image
    sx, sy = _screen_point(page, 700, 300)
    assert np.abs(img[sy, sx] - void).max() > 100, img[sy, sx]  # off the stroke: not void
    assert not errors


def test_undo_and_eraser(painting):
    page, store, *_ = painting
    before = _annotations(store).copy()
    page.click('#tools button[data-tool="1"]')  # stone, in the stone quadrant
    _drag(page, [(2000, 300), (2600, 600)])
    _saved(page, 2)
    assert (_annotations(store) == 1).sum() > 100
    page.click("#undo")
    page.wait_for_function("document.getElementById('painted').dataset.saving === '0'", timeout=30000)
    wait_until(lambda: (_annotations(store) == 1).sum() == 0, timeout=30)
    assert np.array_equal(_annotations(store), before)  # exactly as it was
    assert ann.summary(store)["painted"]["stone"] == 0
    page.click('#tools button[data-tool="255"]')  # eraser across the middle of the void stroke
    _drag(page, [(700, 300), (700, 500)])
    page.wait_for_function("document.getElementById('painted').dataset.saving === '0'", timeout=30000)
    wait_until(lambda: (_annotations(store)[380:420, 690:710] == 255).all(), timeout=30)
    a = _annotations(store)
    assert (a[390:410, 400:600] == 2).all() and (a[390:410, 800:1000] == 2).all()  # the rest stays
    assert ann.summary(store)["painted"]["void"] == int((a == 2).sum())


def test_two_tabs_painting_one_chunk_lose_nothing(painting):
    page, store, server, _, browser = painting
    other = browser.new_page()
    other.goto(server.url + "/")
    other.wait_for_selector("#annotate:not([hidden])", timeout=30000)
    before = int((_annotations(store) == 0).sum())
    # 2 x 15 paste strokes into the same chunk (x 0..512, y 0..512), each on its own row, all in flight at once:
    # the first tab's are sent (not awaited) before the second tab sends its own
    script = """([first, wait]) => {
        const id = bigseg.state.store.id, posts = [];
        for (let k = 0; k < 15; k++) {
            const y = 20 + 8 * (first + 2 * k);
            posts.push(fetch(`/api/stores/${id}/strokes`, {method: 'POST',
              headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({id: `t${first}-${k}`, stroke: {class: 0, radius: 3, points: [[20, y], [480, y]]}})})
              .then((r) => r.status));
        }
        window.sent = Promise.all(posts);
        return wait ? window.sent : posts.length; }"""
    assert page.evaluate(script, [0, False]) == 15
    assert set(other.evaluate(script, [1, True])) == {200}
    assert set(page.evaluate("() => window.sent")) == {200}
    a = _annotations(store)
    for y in [20 + 8 * k for k in range(30)]:
        assert (a[y, 30:470] == 0).all(), y  # every stroke of both tabs is there
    assert int((a == 0).sum()) > before + 30 * 400
    assert ann.summary(store)["painted"]["paste"] == int((a == 0).sum())
    assert not st.check_chunks(st.open_array(store, ann.LAYER))
    other.close()


def _post(url, body: dict, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_writes_are_refused_unless_annotating_and_from_elsewhere(tmp_path):
    store = make_quad_store(tmp_path)
    stroke = {"id": "x", "stroke": {"class": 0, "radius": 4, "points": [[10, 10], [50, 10]]}}
    server = Server(store)
    try:
        code, body = _post(server.url + "/api/stores/quad/strokes", stroke)
        assert code == 403 and "--annotate" in body["error"]
        assert not ann.has_layer(store)  # read-only: not even the layer was made
        # a request addressed to another name (DNS rebinding) is refused, reads too
        req = urllib.request.Request(server.url + "/api/stores", headers={"Host": "evil.example:80"})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=30)
        assert exc.value.code == 403
    finally:
        server.stop()
    server = Server(store, args=["--annotate"])
    try:
        code, _ = _post(server.url + "/api/stores/quad/strokes", stroke, {"Origin": "http://evil.example"})
        assert code == 403
        bad = {"id": "y", "stroke": {"class": 7, "radius": 4, "points": [[10, 10]]}}
        code, body = _post(server.url + "/api/stores/quad/strokes", bad)
        assert code == 400 and "class" in body["error"]
        assert ann.summary(store)["strokes"] == 0
        code, body = _post(server.url + "/api/stores/quad/strokes", stroke)
        assert code == 200 and body["annotations"]["painted"]["paste"] > 0
        code, _ = _post(server.url + "/api/stores/quad/undo", {"id": "never-painted"})
        assert code == 404
        # killed while serving: the store keeps the stroke and every chunk reads
        server.proc.kill()
        server.proc.wait()
        assert (_annotations(store) == 0).sum() == ann.summary(store)["painted"]["paste"] > 0
        assert not st.check_chunks(st.open_array(store, ann.LAYER))
        assert "truth" in st.open_store(store) and np.array_equal(
            np.asarray(st.open_array(store, "truth")[:10, :10]), np.zeros((10, 10), np.uint8))
    finally:
        server.stop()


def test_a_refused_stroke_is_said_and_stays_said(painting):
    page, store, *_ = painting
    before = _annotations(store).copy()
    page.route("**/api/stores/*/strokes", lambda route: route.fulfill(
        status=507, content_type="application/json", body='{"error": "no space left on the device", "status": 507}'))
    try:
        page.click('#tools button[data-tool="0"]')
        _drag(page, [(300, 800), (600, 800)])
        page.wait_for_function("document.getElementById('painted').innerText.includes('not saved')", timeout=30000)
        page.wait_for_timeout(500)
        assert "not saved: no space left on the device" in page.inner_text("#painted")
        assert np.array_equal(_annotations(store), before)
    finally:
        page.unroute("**/api/stores/*/strokes")
    _drag(page, [(300, 850), (600, 850)])  # the next stroke saves, and the error goes
    page.wait_for_function("!document.getElementById('painted').innerText.includes('not saved')", timeout=30000)
    assert (_annotations(store)[845:856, 300:600] == 0).any()
