/* bigseg viewer: OpenSeadragon over the Deep Zoom layers of `bigseg serve`.
   The picture is the base image; one overlay layer (labels, truth, errors, confidence, progress) is drawn on top with
   an opacity. The side panel shows the legend (with the labels' class fractions), the report's key figures and what
   lies under the pointer (position in px and mm, classes, confidence). */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const LAYER_NAMES = {labels: "labels (model)", truth: "truth (annotation)", errors: "errors (labels \u2260 truth)",
                       confidence: "confidence", progress: "progress (running job)", none: "none"};
  const FIGURES = ["air_content", "paste_content", "aggregate_content", "spacing_factor", "specific_surface",
                   "voids_per_mm", "void_count", "traverse_length"];
  const state = {stores: [], store: null, layer: null, overlay: null, stats: null, pointer: 0, stamp: 0};
  const paint = {annotate: false, tool: null, strokes: null, version: 0, undo: [], stroke: null, saving: 0,
                 summary: null, error: null};

  const viewer = OpenSeadragon({
    id: "viewer", showNavigationControl: false, showNavigator: true, navigatorPosition: "TOP_RIGHT",
    maxZoomPixelRatio: 8, minZoomImageRatio: 0.5, visibilityRatio: 0.2, blendTime: 0.05, imageSmoothingEnabled: false,
    // up to 10 tile requests a frame, not OpenSeadragon's 1: where frames are slow (software rendering, a busy
    // machine) one a frame took seconds to fill a screen of three layers
    timeout: 60000, maxTilesPerFrame: 10, gestureSettingsMouse: {clickToZoom: false},
  });
  window.bigseg = {viewer, state, paint};  // for the browser tests

  function esc(s) { return String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";"); }
  function hex(c) { return "#" + c.map((v) => v.toString(16).padStart(2, "0")).join(""); }
  function pct(f) { return (100 * f).toFixed(f < 0.1 ? 2 : 1) + " %"; }
  function params() { return new URLSearchParams(location.hash.slice(1)); }

  async function getJSON(url) {
    const r = await fetch(url, {cache: "no-store"});
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }

  async function init() {
    try {
      state.stores = await getJSON("/api/stores");
    } catch (e) {
      $("status").textContent = "cannot reach the service: " + e.message;
      return;
    }
    if (!state.stores.length) { $("status").textContent = "no stores served"; return; }
    const sel = $("store");
    sel.innerHTML = state.stores.map((s) => `<option value="${esc(s.id)}">${esc(s.name)}</option>`).join("");
    const want = params().get("store");
    if (want && state.stores.some((s) => s.id === want)) sel.value = want;
    sel.onchange = () => openStore(sel.value);
    $("layer").onchange = () => setLayer($("layer").value);
    $("opacity").oninput = () => { if (state.overlay) state.overlay.setOpacity($("opacity").value / 100); };
    $("zoom-in").onclick = () => viewer.viewport.zoomBy(2);
    $("zoom-out").onclick = () => viewer.viewport.zoomBy(0.5);
    $("home").onclick = () => viewer.viewport.goHome();
    await openStore(sel.value, params().get("layer"));
    setInterval(poll, 3000);
  }

  async function openStore(id, layer, view) {
    const store = state.stores.find((s) => s.id === id);
    state.store = store;
    state.overlay = null;
    document.body.dataset.loaded = "";
    viewer.addOnceHandler("open", () => {
      setLayer($("layer").value);
      if (paint.summary !== null) refreshStrokes();
      if (view) { viewer.viewport.zoomTo(view.zoom, null, true); viewer.viewport.panTo(view.center, true); }
      updateScale();
    });
    viewer.open({tileSource: `/dzi/${encodeURIComponent(id)}/image.dzi`});
    const overlays = store.layers.filter((l) => l !== "image" && l !== "annotations");
    const sel = $("layer");
    sel.innerHTML = [...overlays, "none"].map((l) => `<option value="${l}">${LAYER_NAMES[l] || l}</option>`).join("");
    sel.value = layer && overlays.includes(layer) ? layer
      : ["progress", "labels"].find((l) => overlays.includes(l)) || overlays[0] || "none";
    showStatus();
    await loadStats();
    await loadAnnotations();
  }

  function showStatus() {
    const s = state.store, st = $("status");
    const size = `${s.width.toLocaleString()} \u00d7 ${s.height.toLocaleString()} px`;
    const mm = s.pixel_size_um ? `, ${(s.width * s.pixel_size_um / 1000).toFixed(1)} \u00d7 ` +
      `${(s.height * s.pixel_size_um / 1000).toFixed(1)} mm` : ", pixel size unknown";
    st.textContent = (s.running ? "bigseg infer running: finished chunks shown \u2014 " : "") + size + mm;
    st.className = s.running ? "running" : "";
  }

  function setLayer(layer) {
    state.layer = layer;
    if (state.overlay) { viewer.world.removeItem(state.overlay); state.overlay = null; }
    const h = new URLSearchParams({store: state.store.id, layer});
    history.replaceState(null, "", "#" + h.toString());
    legend();
    if (layer === "none") return;
    const stamp = state.store.running ? `?t=${Date.now()}` : "";
    viewer.addTiledImage({
      tileSource: `/dzi/${encodeURIComponent(state.store.id)}/${layer}.dzi${stamp}`, index: 1,
      opacity: $("opacity").value / 100,
      success: (e) => { if (state.layer === layer) state.overlay = e.item; else viewer.world.removeItem(e.item); },
    });
  }

  async function loadStats() {
    try { state.stats = await getJSON(`/api/stores/${encodeURIComponent(state.store.id)}/stats`); }
    catch (e) { state.stats = null; }
    legend();
    figures();
  }

  function legend() {
    const box = $("legend"), s = state.store, layer = state.layer || $("layer").value;
    const stats = state.stats && state.stats.stats;
    let html = `<h2>${esc(LAYER_NAMES[layer] || layer)}</h2>`;
    if (layer === "labels" || layer === "truth" || layer === "none") {
      html += s.classes.map((c) => {
        const f = layer === "labels" && stats && stats.classes[c.name] ? pct(stats.classes[c.name].fraction) : "";
        return `<div class="legend-row"><span class="swatch" style="background:${hex(c.color)}"></span>` +
               `${esc(c.id)} ${esc(c.name)}<span class="fraction">${f}</span></div>`;
      }).join("");
      if (layer === "labels" && stats) html += `<div class="ramp-labels">fractions of the labelled area</div>`;
    } else if (layer === "errors") {
      html += `<div class="legend-row"><span class="swatch" style="background:#e61e1e"></span>labels differ from the truth</div>`;
    } else if (layer === "confidence") {
      const c = state.stats && state.stats.confidence;
      html += `<div class="ramp"></div><div class="ramp-labels"><span>0.5</span><span>0.75</span><span>1.0</span></div>`;
      if (c && c.mean_confidence !== undefined)
        html += `<p>mean ${c.mean_confidence.toFixed(3)}; below ${c.uncertain_below}: ${pct(c.uncertain_fraction)}</p>`;
    } else if (layer === "progress") {
      html += `<div class="legend-row"><span class="swatch" style="background:#28aa46"></span>chunks finished</div>` +
              `<div class="legend-row"><span class="swatch" style="background:#787878"></span>not yet</div>`;
    }
    box.innerHTML = html;
  }

  function figures() {
    const box = $("figures"), link = $("report"), st = state.stats;
    if (!st || !st.report) { box.innerHTML = ""; link.hidden = true; return; }
    const rows = FIGURES.filter((k) => st.report[k]).map((k) => {
      const p = st.report[k];
      const v = typeof p.value === "number" ? (Number.isInteger(p.value) ? p.value : p.value.toPrecision(3)) : p.value;
      return `<tr title="${esc(p.description || "")}"><td>${esc(k.replace(/_/g, " "))}</td>` +
             `<td>${esc(v)} ${p.unit === "1" ? "" : esc(p.unit)}</td></tr>`;
    }).join("");
    box.innerHTML = `<h2>report</h2><table class="figures">${rows}</table>`;
    link.href = st.report_url;
    link.hidden = false;
  }

  /* the scale bar: a round length in mm about 120 screen px long */
  function updateScale() {
    const item = viewer.world.getItemAt(0), s = state.store;
    if (!item || !s) return;
    const screenPerPx = item.viewportToImageZoom(viewer.viewport.getZoom(true));
    const unit = s.pixel_size_um ? s.pixel_size_um / 1000 : 1;  // mm (or px) per image pixel
    const target = 120 / screenPerPx * unit;
    const p = Math.pow(10, Math.floor(Math.log10(target)));
    const nice = [1, 2, 5, 10].map((m) => m * p).filter((v) => v <= target).pop() || p;
    $("scalebar-line").style.width = `${Math.round(nice / unit * screenPerPx)}px`;
    const label = !s.pixel_size_um ? `${+nice.toPrecision(3)} px` : nice >= 1 ? `${+nice.toPrecision(3)} mm`
      : `${+(nice * 1000).toPrecision(3)} \u00b5m`;
    $("scalebar-text").textContent = label;
  }
  viewer.addHandler("animation", updateScale);
  viewer.addHandler("resize", updateScale);

  /* what lies under the pointer, asked of the service (the newest answer wins) */
  let timer = null;
  new OpenSeadragon.MouseTracker({
    element: viewer.container,
    moveHandler: (e) => {
      const item = viewer.world.getItemAt(0);
      if (!item) return;
      const p = item.viewportToImageCoordinates(viewer.viewport.pointFromPixel(e.position));
      const x = Math.floor(p.x), y = Math.floor(p.y);
      clearTimeout(timer);
      timer = setTimeout(() => pixel(x, y), 60);
    },
  });

  async function pixel(x, y) {
    const s = state.store, ticket = ++state.pointer, box = $("cursor");
    if (x < 0 || y < 0 || x >= s.width || y >= s.height) { box.textContent = "outside the image"; return; }
    let v;
    try { v = await getJSON(`/api/stores/${encodeURIComponent(s.id)}/pixel?x=${x}&y=${y}`); }
    catch (e) { return; }
    if (ticket !== state.pointer) return;
    let html = `<h2>under the pointer</h2>x ${x}, y ${y} px`;
    if (v.mm) html += `<br>${v.mm[0].toFixed(3)}, ${v.mm[1].toFixed(3)} mm`;
    if (v.labels) html += `<br>labels: <b>${esc(v.labels)}</b>`;
    if (v.truth) html += `<br>truth: <b>${esc(v.truth)}</b>`;
    if (v.confidence !== undefined) html += `<br>confidence ${v.confidence.toFixed(3)}`;
    box.innerHTML = html;
  }

  /* a running bigseg infer: redraw its finished chunks; when it ends, reopen the store with its new layers */
  async function poll() {
    if (!state.store) return;
    let stores;
    try { stores = await getJSON("/api/stores"); } catch (e) { return; }
    const fresh = stores.find((s) => s.id === state.store.id);
    if (!fresh) return;
    const was = state.store;
    state.stores = stores;
    if (was.running && !fresh.running || String(was.layers) !== String(fresh.layers)) {
      const view = {center: viewer.viewport.getCenter(), zoom: viewer.viewport.getZoom()};
      await openStore(fresh.id, fresh.layers.includes("labels") ? "labels" : state.layer, view);
    } else if (fresh.running) {
      state.store = fresh;
      setLayer(state.layer);
    }
  }

  /* ---------------------------------------------------------------- painting strokes (serve --annotate) */

  const ink = $("ink");
  const ctx = ink.getContext("2d");

  async function loadAnnotations() {
    const id = state.store.id;
    let r;
    try { r = await getJSON(`/api/stores/${encodeURIComponent(id)}/annotations`); } catch (e) { return; }
    paint.annotate = !!r.annotate;
    paint.summary = r.annotations || {painted: {}, strokes: 0};
    paint.undo = [];
    $("annotate").hidden = !paint.annotate;
    if (paint.annotate) tools();
    showPainted();
    showSuggestions(r.annotations && r.annotations.suggestions);
    if (viewer.world.getItemCount()) refreshStrokes();
  }

  function tools() {
    const box = $("tools");
    const buttons = state.store.classes.map((c) =>
      `<button data-tool="${c.id}" aria-pressed="false" title="paint ${esc(c.name)} (${c.id + 1})">` +
      `<span class="swatch" style="background:${hex(c.color)}"></span>${esc(c.name)}</button>`);
    buttons.push(`<button data-tool="255" aria-pressed="false" title="erase strokes (e)">eraser</button>`);
    buttons.push(`<button data-tool="pan" aria-pressed="true" title="move and zoom the image (Esc)">pan</button>`);
    box.innerHTML = buttons.join("");
    box.querySelectorAll("button").forEach((b) => { b.onclick = () => setTool(b.dataset.tool); });
    setTool("pan");
    brushLabel();
  }

  function setTool(tool) {
    paint.tool = tool === "pan" || tool === null ? null : Number(tool);
    $("tools").querySelectorAll("button").forEach((b) => {
      b.setAttribute("aria-pressed", String(b.dataset.tool === String(paint.tool === null ? "pan" : paint.tool)));
    });
    ink.hidden = paint.tool === null;
    if (!ink.hidden) placeInk();
  }

  function placeInk() {
    const r = viewer.container.getBoundingClientRect(), m = viewer.container.parentElement.getBoundingClientRect();
    ink.style.left = `${r.left - m.left}px`;
    ink.style.top = `${r.top - m.top}px`;
    if (ink.width !== Math.round(r.width) || ink.height !== Math.round(r.height)) {
      ink.width = Math.round(r.width);
      ink.height = Math.round(r.height);
    }
  }

  function screenPerPx() {
    const item = viewer.world.getItemAt(0);
    return item ? item.viewportToImageZoom(viewer.viewport.getZoom(true)) : 1;
  }

  function brushRadiusPx() { return Math.min(512, Math.max(0.5, $("brush").value / 2 / screenPerPx())); }

  function brushLabel() { $("brush-px").textContent = `${(2 * brushRadiusPx()).toFixed(1)} px`; }
  $("brush").oninput = brushLabel;
  viewer.addHandler("animation", () => { if (paint.annotate) brushLabel(); });

  function toImage(ev) {
    const item = viewer.world.getItemAt(0);
    const p = item.viewerElementToImageCoordinates(new OpenSeadragon.Point(ev.offsetX, ev.offsetY));
    return [Math.round(p.x * 10) / 10, Math.round(p.y * 10) / 10];
  }

  function colourOf(tool) {
    if (tool === 255) return "rgba(255,255,255,0.85)";
    const c = state.store.classes.find((k) => k.id === tool).color;
    return `rgba(${c[0]},${c[1]},${c[2]},0.75)`;
  }

  ink.addEventListener("pointerdown", (ev) => {
    if (paint.tool === null || ev.button !== 0) return;
    ink.setPointerCapture(ev.pointerId);
    paint.stroke = {class: paint.tool, radius: brushRadiusPx(), points: [toImage(ev)], last: [ev.offsetX, ev.offsetY]};
    ctx.strokeStyle = ctx.fillStyle = colourOf(paint.tool);
    ctx.lineWidth = Number($("brush").value);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.arc(ev.offsetX, ev.offsetY, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  });

  ink.addEventListener("pointermove", (ev) => {
    const s = paint.stroke;
    if (!s) return;
    const [lx, ly] = s.last;
    if (Math.hypot(ev.offsetX - lx, ev.offsetY - ly) < 2) return;
    ctx.beginPath();
    ctx.moveTo(lx, ly);
    ctx.lineTo(ev.offsetX, ev.offsetY);
    ctx.stroke();
    s.last = [ev.offsetX, ev.offsetY];
    s.points.push(toImage(ev));
  });

  function endStroke(ev) {
    const s = paint.stroke;
    if (!s) return;
    paint.stroke = null;
    if (ev && ev.type === "pointerup") s.points.push(toImage(ev));
    send({class: s.class, radius: s.radius, points: s.points});
  }
  ink.addEventListener("pointerup", endStroke);
  ink.addEventListener("pointercancel", endStroke);

  ink.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const at = viewer.viewport.pointFromPixel(new OpenSeadragon.Point(ev.offsetX, ev.offsetY));
    viewer.viewport.zoomBy(ev.deltaY < 0 ? 1.25 : 0.8, at);
    viewer.viewport.applyConstraints();
  }, {passive: false});

  async function post(path, body) {
    const r = await fetch(`/api/stores/${encodeURIComponent(state.store.id)}/${path}`, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || String(r.status));
    return data;
  }

  /* one write to the service (a stroke, or an undo): the saving count, the reply's totals, an error kept on
     screen until the next write succeeds */
  async function write(path, body, failed) {
    paint.saving++;
    showPainted();
    try {
      const r = await post(path, body);
      paint.summary = r.annotations;
      paint.error = null;
      return r;
    } catch (e) {
      paint.error = `${failed}: ${e.message}`;
      return null;
    } finally {
      paint.saving--;
      showPainted();
      refreshStrokes();
    }
  }

  async function send(stroke) {
    const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const r = await write("strokes", {id, stroke}, "not saved");
    if (r && r.pixels) { paint.undo.push(id); $("undo").disabled = false; }
    if (r) await ensureLayer();
  }

  async function undo() {
    const id = paint.undo.pop();
    $("undo").disabled = !paint.undo.length;
    if (id) await write("undo", {id}, "undo failed");
  }
  $("undo").onclick = undo;

  async function ensureLayer() {  // the store's layer list gains "annotations" with the first stroke
    if (state.store.layers.includes("annotations")) return;
    try {
      const stores = await getJSON("/api/stores");
      const fresh = stores.find((s) => s.id === state.store.id);
      if (fresh) { state.stores = stores; state.store = fresh; }
    } catch (e) { /* shown on the next poll */ }
  }

  function showPainted() {
    const box = $("painted"), s = paint.summary;
    box.className = paint.saving ? "saving" : "";
    if (!paint.annotate && !(s && s.strokes)) { box.textContent = ""; return; }
    const parts = s ? Object.entries(s.painted).map(([k, v]) => `${esc(k)} ${v.toLocaleString()} px`) : [];
    box.innerHTML = (paint.error ? `<span class="error">${esc(paint.error)}</span><br>` : "") +
      (paint.saving ? "saving\u2026 " : "saved: ") + (parts.join(", ") || "nothing painted yet") +
      (s ? ` (${s.strokes} stroke${s.strokes === 1 ? "" : "s"})` : "");
    box.dataset.strokes = s ? s.strokes : 0;
    box.dataset.saving = paint.saving;
  }

  function showSuggestions(sug) {
    const box = $("suggestions");
    const regions = sug && sug.regions ? sug.regions : [];
    if (!regions.length) { box.innerHTML = ""; return; }
    box.innerHTML = "<h2>where to paint next</h2><ol>" + regions.map((g, k) =>
      `<li><a data-k="${k}" title="flips change ${(100 * g.flip_disagreement).toFixed(1)} % of labels, ` +
      `${(100 * g.unsure).toFixed(1)} % unsure">${g.width} \u00d7 ${g.height} px at x ${g.x}, y ${g.y}</a></li>`)
      .join("") + "</ol>";
    box.querySelectorAll("a").forEach((a) => {
      a.onclick = () => {
        const g = regions[Number(a.dataset.k)], item = viewer.world.getItemAt(0);
        viewer.viewport.fitBounds(item.imageToViewportRectangle(g.x, g.y, g.width, g.height));
      };
    });
  }

  /* the painted strokes as a layer on top of everything, reloaded (as a new version) after each change */
  function refreshStrokes() {
    const show = $("show-strokes").checked && state.store && state.store.layers.includes("annotations");
    const old = paint.strokes;
    if (!show) {
      if (old) { viewer.world.removeItem(old); paint.strokes = null; }
      ctx.clearRect(0, 0, ink.width, ink.height);
      return;
    }
    const version = ++paint.version;
    viewer.addTiledImage({
      tileSource: `/dzi/${encodeURIComponent(state.store.id)}/annotations.dzi?v=${version}`,
      opacity: 0.85,
      success: (e) => {
        if (version !== paint.version) { viewer.world.removeItem(e.item); return; }
        paint.strokes = e.item;
        const done = () => {
          if (old && viewer.world.getIndexOfItem(old) >= 0) viewer.world.removeItem(old);
          if (!paint.stroke && !paint.saving) ctx.clearRect(0, 0, ink.width, ink.height);
          document.body.dataset.strokes = String(version);
        };
        if (e.item.getFullyLoaded()) done(); else e.item.addOnceHandler("fully-loaded-change", done);
      },
    });
  }
  $("show-strokes").onchange = refreshStrokes;

  document.addEventListener("keydown", (ev) => {
    if (!paint.annotate || ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") { ev.preventDefault(); undo(); }
    else if (ev.key === "Escape") setTool("pan");
    else if (ev.key === "e") setTool(255);
    else if (/^[1-9]$/.test(ev.key) && Number(ev.key) <= state.store.classes.length) setTool(Number(ev.key) - 1);
  });
  window.addEventListener("resize", () => { if (!ink.hidden) placeInk(); });

  /* data-loaded="1" once every layer on screen has its tiles; checked again when a layer goes, since the one that
     goes may be the last that was still loading */
  function updateLoaded() {
    const n = viewer.world.getItemCount();
    let all = n > 0;
    for (let i = 0; i < n; i++) all = all && viewer.world.getItemAt(i).getFullyLoaded();
    document.body.dataset.loaded = all ? "1" : "";
  }
  viewer.world.addHandler("add-item", (e) => e.item.addHandler("fully-loaded-change", updateLoaded));
  viewer.world.addHandler("remove-item", updateLoaded);

  init();
})();
