"""``bigseg serve``: a small read-only HTTP service of Deep Zoom tiles and a viewer page, on tornado (which comes
with dask's distributed).

Routes (``{store}`` is a store's id: its folder name without ``.zarr``):

* ``/`` -- the viewer page; ``/static/...`` -- its script (OpenSeadragon, vendored with its licence);
* ``/api/stores`` -- the stores served (size, pixel size, classes, layers);
* ``/api/stores/{store}/stats`` -- the labels' statistics and confidence, and the report's figures if one exists;
* ``/api/stores/{store}/pixel?x=&y=`` -- the class (labels, truth) and confidence at a pixel;
* ``/dzi/{store}/{layer}.dzi`` and ``/dzi/{store}/{layer}_files/{level}/{col}_{row}.{jpg|png}`` -- Deep Zoom;
* ``/report/{store}/`` -- the store's report (``STORE-report/report.html``), when there is one;
* ``/api/stores/{store}/annotations`` -- painted pixels per class, strokes, regions ``bigseg adapt`` suggests.

With ``--annotate`` (and only then) two writes are accepted, both into the store's ``annotations`` layer and
nothing else: ``POST /api/stores/{store}/strokes`` ({"id", "stroke": {"class", "radius", "points"}}) paints a
stroke, ``POST /api/stores/{store}/undo`` ({"id"}) takes back one of this service's strokes. A write must come
as ``application/json`` from the viewer's own origin (a page elsewhere cannot post one).

Only the stores given are served, nothing else on disk: ids are looked up, never joined into paths, and static
files come from a fixed set. Anything missing is a 404 with a JSON body. A service listening on a loopback
address answers only requests addressed to a loopback name (``Host: localhost``, ``127.0.0.1``, ``[::1]``), so
that a web page cannot reach it through a DNS name it controls (DNS rebinding).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

from bigseg import annotations as ann
from bigseg import store as st
from bigseg.errors import BigsegError
from bigseg.serve import tiles

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"openseadragon.min.js": "application/javascript", "viewer.js": "application/javascript",
                "viewer.css": "text/css", "openseadragon-LICENSE.txt": "text/plain"}
TILE_PATH = re.compile(r"^(\d{1,2})/(\d{1,7})_(\d{1,7})\.(jpg|png)$")


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
UNDO_KEPT = 500
UNDO_PIXELS = 20_000_000
"""Strokes per store this service can take back: the most recent ones, at most UNDO_KEPT of them and UNDO_PIXELS
changed pixels together (about 100 MB of what they overwrote)."""


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def make_app(slabs: dict, cache_bytes: int = 128 * 2**20, threads: int = 8, annotate: bool = False,
             loopback_only: bool = True):
    import tornado.web

    cache = tiles.TileCache(cache_bytes)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="bigseg-tile")
    changes: dict = {key: OrderedDict() for key in slabs}  # per store: stroke id -> annotations.Change (undo)

    class Base(tornado.web.RequestHandler):
        def prepare(self):
            if loopback_only and _host_name(self.request.host) not in LOOPBACK_NAMES:
                self.fail(403, "this service answers only requests to localhost")

        def write_error(self, status_code, **kwargs):
            self.set_header("Content-Type", "application/json")
            reason = self._reason if status_code != 500 else "internal error"
            self.finish(json.dumps({"error": reason, "status": status_code}))

        def fail(self, status: int, message: str) -> NoReturn:
            raise tornado.web.HTTPError(status, reason=message[:200])

        def slab(self, key: str) -> tiles.Slab:
            slab = slabs.get(key)
            if slab is None:
                self.fail(404, "no such store")
            try:
                slab.refresh()
            except (BigsegError, OSError) as exc:  # moved, deleted or damaged since the service started
                self.fail(404, f"store {slab.name} is not available now ({str(exc).splitlines()[0][:120]})")
            return slab

        def set_default_headers(self):
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Cache-Control", "no-store")

    class Index(Base):
        def get(self):
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.write((STATIC / "index.html").read_bytes())

    class Static(Base):
        def get(self, name):
            if name not in STATIC_FILES:
                self.fail(404, "no such file")
            self.set_header("Content-Type", STATIC_FILES[name])
            self.set_header("Cache-Control", "max-age=3600")
            self.write((STATIC / name).read_bytes())

    class Stores(Base):
        def get(self):
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps([info for info in map(_available, slabs.values()) if info is not None]))

    class Stats(Base):
        def get(self, key):
            slab = self.slab(key)
            group = st.open_store(slab.path)
            out = {"store": slab.info()}
            if "labels" in group:
                labels = st.array(group, "labels")
                out["stats"] = st.attr(labels, "stats")
                out["confidence"] = st.attr(labels, "confidence")
            report = _report_path(slab)
            if report is not None:
                try:
                    doc = json.loads((report.parent / "stats.json").read_text())
                    out["report"] = doc["labels"]["parameters"] if len(doc.get("slabs", [])) == 1 else {}
                except (OSError, ValueError, KeyError, TypeError):
                    out["report"] = {}
                out["report_url"] = f"/report/{key}/"
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(out))

    class Pixel(Base):
        def get(self, key):
            slab = self.slab(key)
            try:
                x, y = int(self.get_argument("x")), int(self.get_argument("y"))
                value = tiles.value_at(slab, x, y)
            except (ValueError, tornado.web.MissingArgumentError):
                self.fail(404, "give integer x and y")
            except tiles.NotFound as exc:
                self.fail(404, str(exc))
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(value))

    class Dzi(Base):
        def get(self, key, layer):
            slab = self.slab(key)  # (refreshed)
            if layer not in slab.layers:
                self.fail(404, "no such layer")
            self.set_header("Content-Type", "application/xml")
            self.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<Image xmlns="http://schemas.microsoft.com/deepzoom/'
                       f'2008" TileSize="{tiles.TILE}" Overlap="0" Format="{tiles.FORMAT[layer]}"><Size '
                       f'Width="{slab.width}" Height="{slab.height}"/></Image>')

    class Tile(Base):
        async def get(self, key, layer, rest):
            slab = self.slab(key)
            m = TILE_PATH.match(rest)
            if m is None or layer not in tiles.LAYERS:
                self.fail(404, "no such tile")
            level, col, row, ext = int(m[1]), int(m[2]), int(m[3]), m[4]
            if ext != tiles.FORMAT[layer]:
                self.fail(404, "no such tile")
            ident = (key, layer, level, col, row, tiles.slab_stamp(slab, layer))
            hit = cache.get(ident)
            if hit is None:
                import tornado.ioloop

                try:
                    hit = await tornado.ioloop.IOLoop.current().run_in_executor(pool, tiles.render, slab, layer,
                                                                                level, col, row)
                except tiles.NotFound as exc:
                    self.fail(404, str(exc))
                cache.put(ident, hit)
            data, fmt = hit
            self.set_header("Content-Type", "image/jpeg" if fmt == "jpg" else "image/png")
            self.write(data)

    class Report(Base):
        def get(self, key):
            report = _report_path(self.slab(key))
            if report is None:
                self.fail(404, "no report for this store (bigseg report STORE)")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.write(report.read_bytes())

    class Annotations(Base):
        def get(self, key):
            slab = self.slab(key)
            summary = ann.summary(slab.path)
            if summary is not None:
                suggestions = st.attr(st.open_array(slab.path, ann.LAYER), "suggestions")
                summary["suggestions"] = suggestions if isinstance(suggestions, dict) else None
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps({"annotate": annotate, "annotations": summary}))

    class Write(Base):
        """The only writes: strokes into (and undo from) a store's annotations, with --annotate."""

        def body_json(self) -> dict:
            if not annotate:
                self.fail(403, "read-only: start the service with --annotate to paint")
            if not self.request.headers.get("Content-Type", "").startswith("application/json"):
                self.fail(415, "send JSON (Content-Type: application/json)")
            origin = self.request.headers.get("Origin")
            if origin is not None and origin.split("://", 1)[-1].lower() != self.request.host.lower():
                self.fail(403, "writes are accepted from the viewer's own page only")
            if len(self.request.body) > 4 * 2**20:
                self.fail(413, "stroke too large")
            try:
                data = json.loads(self.request.body)
            except ValueError:
                self.fail(400, "not JSON")
            if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not 0 < len(data["id"]) <= 64:
                self.fail(400, "give an 'id' (a string of up to 64 characters)")
            return data

        def reply(self, slab, **more):
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps({**more, "annotations": ann.summary(slab.path)}))

    class Strokes(Write):
        async def post(self, key):
            slab = self.slab(key)
            data = self.body_json()
            try:
                stroke = ann.Stroke.parse(data.get("stroke"), len(slab.classes))
            except BigsegError as exc:
                self.fail(400, str(exc))
            import tornado.ioloop

            try:
                change = await tornado.ioloop.IOLoop.current().run_in_executor(pool, ann.paint, slab.path, stroke)
            except BigsegError as exc:  # a stroke too large, a damaged store: said, nothing written
                self.fail(400, str(exc))
            except OSError as exc:  # disk full, permissions: the stroke is not saved, and the page says why
                self.fail(507, f"not saved: {exc.strerror or exc}")
            if change is not None:
                kept = changes[key]
                kept[data["id"]] = change
                while len(kept) > UNDO_KEPT or sum(c.pixels for c in kept.values()) > UNDO_PIXELS:
                    kept.popitem(last=False)
            slab.refresh()
            self.reply(slab, id=data["id"], pixels=change.pixels if change else 0)

    class Undo(Write):
        async def post(self, key):
            slab = self.slab(key)
            data = self.body_json()
            change = changes[key].pop(data["id"], None)
            if change is None:
                self.fail(404, "no such stroke to undo (painted by another service, or undone already)")
            import tornado.ioloop

            restored = await tornado.ioloop.IOLoop.current().run_in_executor(pool, ann.undo, slab.path, change)
            self.reply(slab, id=data["id"], restored=restored)

    class Missing(Base):
        def prepare(self):
            super().prepare()
            self.fail(404, "not found")

    return tornado.web.Application([
        (r"/", Index),
        (r"/static/([A-Za-z0-9._-]+)", Static),
        (r"/api/stores", Stores),
        (r"/api/stores/([A-Za-z0-9._-]+)/stats", Stats),
        (r"/api/stores/([A-Za-z0-9._-]+)/pixel", Pixel),
        (r"/dzi/([A-Za-z0-9._-]+)/([a-z]+)\.dzi", Dzi),
        (r"/dzi/([A-Za-z0-9._-]+)/([a-z]+)_files/(.+)", Tile),
        (r"/report/([A-Za-z0-9._-]+)/?", Report),
        (r"/api/stores/([A-Za-z0-9._-]+)/annotations", Annotations),
        (r"/api/stores/([A-Za-z0-9._-]+)/strokes", Strokes),
        (r"/api/stores/([A-Za-z0-9._-]+)/undo", Undo),
        (r".*", Missing),
    ], compress_response=False)


def _available(slab: tiles.Slab) -> dict | None:
    """The store's entry for /api/stores, or None while it cannot be read (moved away, deleted, damaged): the
    others stay listed and viewable, and it comes back when it is back."""
    try:
        return slab.info()
    except (BigsegError, OSError):
        return None


def _report_path(slab: tiles.Slab) -> Path | None:
    """The store's report: ``STORE-report/`` (bigseg report's default) or ``report/`` beside it (bigseg demo's),
    when its stats.json names this store."""
    if st.is_url(slab.path):  # a store on object storage: its report, if any, is not beside it here
        return None
    path = Path(slab.path)
    base = path.name[:-5] if path.name.endswith(".zarr") else path.name
    for folder in (path.with_name(base + "-report"), path.with_name("report")):
        try:
            doc = json.loads((folder / "stats.json").read_text())
            stores = [Path(s["store"]).resolve() for s in doc.get("slabs", [])]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if path in stores and (folder / "report.html").is_file():
            return folder / "report.html"
    return None


def serve(paths: list, host: str = "127.0.0.1", port: int = 8000, cache_bytes: int = 128 * 2**20, echo=print,
          ready=None, annotate: bool = False) -> None:
    """Serve ``paths`` (stores, or folders of stores) until interrupted. ``ready(port)`` is called once listening.
    ``annotate``: accept strokes painted in the viewer into each store's annotations (created when missing)."""
    import asyncio

    import tornado.httpserver

    slabs = tiles.discover(paths)
    if annotate:
        remote = [str(s.path) for s in slabs.values() if st.is_url(s.path)]
        if remote:
            raise BigsegError(f"{remote[0]}: --annotate paints into stores on this machine's disk; a store on object "
                              "storage is served read-only (copy it here to paint)")
        for slab in slabs.values():
            ann.ensure_layer(slab.path, "bigseg serve --annotate")
    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    app = make_app(slabs, cache_bytes=cache_bytes, annotate=annotate, loopback_only=loopback)

    async def main():
        server = tornado.httpserver.HTTPServer(app)
        try:
            sockets = tornado.netutil.bind_sockets(port, address=host)
        except OSError as exc:
            raise BigsegError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
        server.add_sockets(sockets)
        bound = sockets[0].getsockname()[1]
        echo(f"serving {len(slabs)} store(s) ({', '.join(slabs)}) at http://{host}:{bound}/ (Ctrl-C to stop)"
             + ("; painting strokes into their annotations" if annotate else ""))
        if host not in ("127.0.0.1", "localhost", "::1"):
            echo(f"note: listening on {host}: anyone who can reach this machine can view these stores")
        if ready:
            ready(bound)
        await asyncio.Event().wait()

    import tornado.netutil

    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the normal way to stop a service
        echo("stopped")
