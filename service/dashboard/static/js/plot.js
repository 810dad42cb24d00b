// Small dependency-free charts: points and lines on a <canvas> (the Pareto scatter with its
// colour scale, the hypervolume and best-reward steps) and per-layer bars in SVG.
// Why not Plotly.js: its 1.5 MB (gzipped) bundle took seconds to evaluate before the first
// point could be drawn; these charts draw 2,000 points in a few milliseconds.
import { fmtInt, h } from "./util.js";

const FAMILY = 'Inter, ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
const FONT = `12px ${FAMILY}`;
// Colours follow the page's theme (light or dark, app.css): read when the scheme changes, not
// per draw (reading computed style forces a style recalculation while the page updates).
let INK = "#374151", MUTED = "#6b7280", GRID = "#f0f1f5", EDGE = "#e5e7eb", PANEL = "#fff";
let themed = false;
window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener?.("change", () => { themed = false; });
function theme() {
  if (themed) return;
  themed = true;
  const css = getComputedStyle(document.documentElement);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  INK = v("--chart-ink", INK); MUTED = v("--muted", MUTED); GRID = v("--line-2", GRID);
  EDGE = v("--line", EDGE); PANEL = v("--card", PANEL);
}
const SVG_NS = "http://www.w3.org/2000/svg";

// ---- scales ------------------------------------------------------------------------------------
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
const BINS = 64; // colours per scale: points are filled in one path per bin

/** The Viridis colour at t in [0, 1]. */
export function viridis(t) {
  const u = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(u)), f = u - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
const PALETTE = Array.from({ length: BINS }, (_, i) => viridis(i / (BINS - 1)));

/** Round tick values (1, 2 or 5 times a power of ten) covering [lo, hi]. */
export function ticks(lo, hi, count = 6) {
  if (!(hi > lo)) return { values: [lo], step: 1 };
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  const values = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) values.push(Number(v.toPrecision(12)));
  return { values, step };
}

export function tickText(v, step) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e6 || a < 1e-4) return v.toExponential(1).replace("e+", "e");
  if (step >= 1 && Number.isInteger(v)) return fmtInt(v);
  const digits = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(digits);
}

function extent(values, pad = 0.05) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) { const d = Math.abs(lo) * 0.05 || 1; return [lo - d, hi + d]; }
  const d = (hi - lo) * pad;
  return [lo - d, hi + d];
}

// ---- markers -------------------------------------------------------------------------------------
function circle(ctx, x, y, r) {
  ctx.moveTo(x + r, y);
  ctx.arc(x, y, r, 0, Math.PI * 2);
}

function star(ctx, x, y, r) {
  for (let i = 0; i < 10; i += 1) {
    const a = -Math.PI / 2 + (i * Math.PI) / 5, rr = i % 2 ? r * 0.45 : r;
    const px = x + rr * Math.cos(a), py = y + rr * Math.sin(a);
    if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
  }
  ctx.closePath();
}

/**
 * A chart of point layers and lines on a canvas, with axes, an optional colour bar, a legend
 * that toggles layers, a hover label, click on a point, and box zoom (double-click resets).
 *
 * spec = {
 *   x: {title, range?}, y: {title, range?}, key,           // zoom is kept while key is unchanged
 *   color: {title, min, max} | null,                         // Viridis scale for layers with value()
 *   lines: [{id, name, x: [], y: [], shape: "linear"|"hv"|"vh", color, width, fill}],
 *   layers: [{id, name, points: [], x: p => .., y: p => .., value?: p => .., tip: p => html,
 *             size, alpha, fill, stroke, strokeWidth, marker: "circle"|"star", legend}],
 *   hover: "closest" | "x", hoverDistance
 * }
 * Layers draw after lines, in order; the point under the mouse is looked up in all of them.
 */
export class Chart {
  constructor(el, { onClick = null, legend = true, download = null } = {}) {
    this.el = el;
    this.onClick = onClick;
    this.spec = null;
    this.hidden = new Set();
    this.zoom = null; // {x: [lo, hi], y: [lo, hi]} while zoomed
    this.hovered = null;
    this.mouse = null; // [x, y] in the plot area while the mouse is over it
    this.drawn = 0; // points painted by the last draw
    this.legendEl = legend ? h("div", { class: "chart-legend" }) : null;
    this.canvas = h("canvas", { class: "chart-canvas" });
    this.tip = h("div", { class: "chart-tip", role: "tooltip" });
    this.box = h("div", { class: "chart-box" });
    this.resetBtn = h("button", { class: "chart-btn", type: "button", title: "Show everything (or double-click the plot)",
      style: { display: "none" }, onclick: () => this.resetZoom() }, "Reset zoom");
    this.pngBtn = download ? h("button", { class: "chart-btn", type: "button", title: "Download the plot as PNG",
      onclick: () => this.savePng(download) }, "PNG") : null;
    this.area = h("div", { class: "chart-area" }, this.canvas, this.box, this.tip);
    el.classList.add("chart");
    el.append(...[this.legendEl ? h("div", { class: "chart-top" }, this.legendEl, this.resetBtn, this.pngBtn) : null, this.area].filter(Boolean));
    el.chart = this;
    this.bind();
    this.resizer = new ResizeObserver(() => { if (this.spec && this.sizeChanged()) this.render(); });
    this.resizer.observe(this.area);
  }

  destroy() {
    this.resizer.disconnect();
    window.removeEventListener("mouseup", this.onMouseUp);
    this.spec = null;
  }

  /** Draw (or redraw) from a spec; returns the number of points painted. */
  draw(spec) {
    if (this.spec && this.spec.key !== spec.key) this.zoom = null;
    this.spec = spec;
    this.renderLegend();
    this.render();
    return this.drawn;
  }

  sizeChanged() {
    const w = this.area.clientWidth, hh = this.area.clientHeight;
    return w !== this.width || hh !== this.height;
  }

  // ---- geometry --------------------------------------------------------------------------------
  visibleLayers() {
    return this.spec.layers.filter((l) => !this.hidden.has(l.id));
  }

  ranges() {
    const s = this.spec;
    if (this.zoom) return this.zoom;
    const xs = [], ys = [];
    for (const l of s.layers) for (const p of l.points) {
      const x = l.x(p), y = l.y(p);
      if (Number.isFinite(x) && Number.isFinite(y)) { xs.push(x); ys.push(y); }
    }
    for (const line of s.lines || []) { xs.push(...line.x); ys.push(...line.y); }
    return { x: s.x.range || extent(xs), y: s.y.range || extent(ys) };
  }

  layout(ctx) {
    const s = this.spec;
    const r = this.ranges();
    const yt = ticks(r.y[0], r.y[1], Math.max(3, Math.round(this.height / 70)));
    ctx.font = FONT;
    const labelW = Math.max(20, ...yt.values.map((v) => ctx.measureText(tickText(v, yt.step)).width));
    const left = Math.ceil(labelW + 10 + (s.y.title ? 20 : 0));
    const right = s.color ? 84 : 14;
    const top = 8, bottom = s.x.title ? 44 : 28;
    const w = Math.max(10, this.width - left - right), hh = Math.max(10, this.height - top - bottom);
    const xt = ticks(r.x[0], r.x[1], Math.max(2, Math.round(w / 90)));
    const sx = (v) => left + ((v - r.x[0]) / (r.x[1] - r.x[0])) * w;
    const sy = (v) => top + hh - ((v - r.y[0]) / (r.y[1] - r.y[0])) * hh;
    const ix = (px) => r.x[0] + ((px - left) / w) * (r.x[1] - r.x[0]);
    const iy = (py) => r.y[0] + ((top + hh - py) / hh) * (r.y[1] - r.y[0]);
    return { r, left, top, w, h: hh, xt, yt, sx, sy, ix, iy };
  }

  // ---- painting --------------------------------------------------------------------------------
  render() {
    const s = this.spec;
    if (!s) return;
    this.width = this.area.clientWidth;
    this.height = this.area.clientHeight;
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(1, Math.round(this.width * dpr)), ch = Math.max(1, Math.round(this.height * dpr));
    if (this.canvas.width !== cw || this.canvas.height !== ch) { this.canvas.width = cw; this.canvas.height = ch; }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    theme();
    const g = this.layout(ctx);
    this.geom = g;
    this.axes(ctx, g);
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.left, g.top, g.w, g.h);
    ctx.clip();
    for (const line of s.lines || []) if (!this.hidden.has(line.id)) this.line(ctx, g, line);
    let drawn = 0;
    for (const l of this.visibleLayers()) drawn += this.points(ctx, g, l);
    ctx.restore();
    const empty = s.empty && !s.layers.some((l) => l.points.length) && !(s.lines || []).some((l) => l.x.length);
    if (empty) this.message(ctx, g, s.empty);
    this.el.dataset.empty = empty ? "1" : "";
    if (s.color) this.colorbar(ctx, g);
    this.drawn = drawn;
    this.resetBtn.style.display = this.zoom ? "" : "none";
    this.el.dataset.painted = String(drawn);
    if (this.hovered) this.rehover();
  }

  /** What will appear here, instead of bare axes ("Waiting for the first trial"). */
  message(ctx, g, text) {
    ctx.fillStyle = PANEL;
    ctx.fillRect(0, 0, this.width, this.height);
    ctx.fillStyle = MUTED;
    ctx.font = `14px ${FAMILY}`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(text, this.width / 2, this.height / 2);
  }

  axes(ctx, g) {
    const s = this.spec;
    ctx.fillStyle = PANEL;
    ctx.fillRect(g.left, g.top, g.w, g.h);
    ctx.lineWidth = 1;
    ctx.strokeStyle = GRID;
    ctx.beginPath();
    for (const v of g.xt.values) { const x = Math.round(g.sx(v)) + 0.5; ctx.moveTo(x, g.top); ctx.lineTo(x, g.top + g.h); }
    for (const v of g.yt.values) { const y = Math.round(g.sy(v)) + 0.5; ctx.moveTo(g.left, y); ctx.lineTo(g.left + g.w, y); }
    ctx.stroke();
    ctx.strokeStyle = EDGE;
    ctx.strokeRect(g.left + 0.5, g.top + 0.5, g.w - 1, g.h - 1);
    ctx.font = FONT;
    ctx.fillStyle = INK;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const v of g.xt.values) ctx.fillText(tickText(v, g.xt.step), g.sx(v), g.top + g.h + 6);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of g.yt.values) ctx.fillText(tickText(v, g.yt.step), g.left - 6, g.sy(v));
    ctx.fillStyle = MUTED;
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    if (s.x.title) ctx.fillText(s.x.title, g.left + g.w / 2, g.top + g.h + 38);
    if (s.y.title) {
      ctx.save();
      ctx.translate(14, g.top + g.h / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textBaseline = "middle";
      ctx.fillText(s.y.title, 0, 0);
      ctx.restore();
    }
  }

  line(ctx, g, line) {
    const n = line.x.length;
    if (!n) return;
    ctx.beginPath();
    ctx.moveTo(g.sx(line.x[0]), g.sy(line.y[0]));
    for (let i = 1; i < n; i += 1) {
      const x = g.sx(line.x[i]), y = g.sy(line.y[i]);
      if (line.shape === "hv") ctx.lineTo(x, g.sy(line.y[i - 1]));
      else if (line.shape === "vh") ctx.lineTo(g.sx(line.x[i - 1]), y);
      ctx.lineTo(x, y);
    }
    if (line.fill) {
      const base = g.sy(Math.max(g.r.y[0], Math.min(g.r.y[1], 0)));
      ctx.save();
      ctx.lineTo(g.sx(line.x[n - 1]), base);
      ctx.lineTo(g.sx(line.x[0]), base);
      ctx.closePath();
      ctx.fillStyle = line.fill;
      ctx.fill();
      ctx.restore();
      ctx.beginPath();
      ctx.moveTo(g.sx(line.x[0]), g.sy(line.y[0]));
      for (let i = 1; i < n; i += 1) {
        const x = g.sx(line.x[i]), y = g.sy(line.y[i]);
        if (line.shape === "hv") ctx.lineTo(x, g.sy(line.y[i - 1]));
        else if (line.shape === "vh") ctx.lineTo(g.sx(line.x[i - 1]), y);
        ctx.lineTo(x, y);
      }
    }
    ctx.strokeStyle = line.color;
    ctx.lineWidth = line.width || 2;
    ctx.lineJoin = "round";
    ctx.stroke();
  }

  /** One path per colour bin: a few fill calls for thousands of points. */
  points(ctx, g, l) {
    const c = this.spec.color;
    const r = (l.size || 6) / 2;
    const shape = l.marker === "star" ? star : circle;
    const groups = new Map();
    let drawn = 0;
    const span = c ? (c.max - c.min) || 1 : 1;
    for (const p of l.points) {
      const x = g.sx(l.x(p)), y = g.sy(l.y(p));
      if (!(x >= g.left - r && x <= g.left + g.w + r && y >= g.top - r && y <= g.top + g.h + r)) continue;
      let fill = l.fill;
      if (c && l.value) {
        const v = l.value(p);
        fill = Number.isFinite(v) ? PALETTE[Math.round(((v - c.min) / span) * (BINS - 1))] || PALETTE[0] : "#cbd5e1";
      }
      let path = groups.get(fill);
      if (!path) { path = new Path2D(); groups.set(fill, path); }
      shape(path, x, y, r);
      drawn += 1;
    }
    ctx.globalAlpha = l.alpha ?? 1;
    for (const [fill, path] of groups) {
      ctx.fillStyle = fill;
      ctx.fill(path);
      if (l.stroke) { ctx.strokeStyle = l.stroke; ctx.lineWidth = l.strokeWidth || 1; ctx.stroke(path); }
    }
    ctx.globalAlpha = 1;
    return drawn;
  }

  colorbar(ctx, g) {
    const c = this.spec.color;
    const x = g.left + g.w + 14, bw = 10, top = g.top + g.h * 0.075, bh = g.h * 0.85;
    const grad = ctx.createLinearGradient(0, top + bh, 0, top);
    VIRIDIS.forEach((_, i) => grad.addColorStop(i / (VIRIDIS.length - 1), viridis(i / (VIRIDIS.length - 1))));
    ctx.fillStyle = grad;
    ctx.fillRect(x, top, bw, bh);
    const t = ticks(c.min, c.max, 5);
    ctx.font = FONT;
    ctx.fillStyle = INK;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    const span = (c.max - c.min) || 1;
    for (const v of t.values) {
      if (v < c.min || v > c.max) continue;
      ctx.fillText(tickText(v, t.step), x + bw + 4, top + bh - ((v - c.min) / span) * bh);
    }
    if (c.title) {
      ctx.save();
      ctx.translate(this.width - 8, top + bh / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillStyle = MUTED;
      ctx.textAlign = "center";
      ctx.fillText(c.title, 0, 0);
      ctx.restore();
    }
  }

  renderLegend() {
    if (!this.legendEl) return;
    const items = [];
    for (const line of this.spec.lines || []) {
      if (line.legend === false) continue;
      items.push({ id: line.id, name: line.name, swatch: h("span", { class: "sw line", style: { background: line.color } }) });
    }
    for (const l of this.spec.layers) {
      if (l.legend === false) continue;
      // Coloured by a third axis: the swatch shows the scale the points use, not one colour.
      const style = l.marker === "star" ? { color: l.fill } : {
        background: this.spec.color && l.value ? `linear-gradient(135deg, ${viridis(0.1)}, ${viridis(0.5)}, ${viridis(0.95)})` : l.fill,
        opacity: String(Math.max(0.45, l.alpha ?? 1)), borderColor: l.stroke || "transparent" };
      items.push({ id: l.id, name: l.name, swatch: h("span", { class: `sw ${l.marker === "star" ? "star" : "dot"}`, style },
        l.marker === "star" ? "★" : null) });
    }
    const key = items.map((i) => `${i.id}:${i.name}:${this.hidden.has(i.id)}`).join("|");
    if (key === this.legendKey) return;
    this.legendKey = key;
    this.legendEl.replaceChildren(...items.map((i) => h("button", {
      type: "button", class: `chart-key${this.hidden.has(i.id) ? " off" : ""}`, dataset: { layer: i.id },
      title: "Show or hide", onclick: () => { this.toggle(i.id); } }, i.swatch, i.name)));
  }

  toggle(id) {
    if (this.hidden.has(id)) this.hidden.delete(id); else this.hidden.add(id);
    this.legendKey = null;
    this.renderLegend();
    this.hideTip();
    this.render();
  }

  resetZoom() {
    this.zoom = null;
    this.render();
  }

  savePng(name) {
    this.canvas.toBlob((blob) => {
      if (!blob) return;
      const a = h("a", { href: URL.createObjectURL(blob), download: `${name}.png` });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    });
  }

  // ---- hover, click, zoom ------------------------------------------------------------------------
  /** The point nearest the mouse within the hover distance, top layer first on ties. */
  pick(mx, my) {
    const g = this.geom;
    if (!g || !this.spec) return null;
    const byX = this.spec.hover === "x";
    const limit = this.spec.hoverDistance ?? 12;
    let best = null, bestD = Infinity;
    const layers = this.visibleLayers();
    for (let li = layers.length - 1; li >= 0; li -= 1) {
      const l = layers[li];
      if (!l.tip) continue;
      const r = (l.size || 6) / 2;
      for (const p of l.points) {
        const x = g.sx(l.x(p)), y = g.sy(l.y(p));
        if (!(x >= g.left && x <= g.left + g.w && y >= g.top && y <= g.top + g.h)) continue;
        // The nearest centre wins (a point under the finger beats a larger one beside it);
        // the top layer wins exact ties.
        const d = byX ? Math.abs(x - mx) : Math.hypot(x - mx, y - my);
        if (d < bestD) { best = { layer: l, point: p, x, y, r }; bestD = d; }
      }
    }
    return best && (byX || bestD <= limit + best.r) ? best : null;
  }

  showTip(hit) {
    this.hovered = hit;
    this.tip.innerHTML = hit.layer.tip(hit.point);
    this.tip.style.display = "block";
    const tw = this.tip.offsetWidth, th = this.tip.offsetHeight;
    let left = hit.x + 14;
    if (left + tw > this.width - 4) left = hit.x - 14 - tw;
    const top = Math.max(2, Math.min(this.height - th - 2, hit.y - th / 2));
    this.tip.style.left = `${Math.max(2, left)}px`;
    this.tip.style.top = `${top}px`;
    this.el.dataset.hover = String(hit.layer.id);
    this.el.dataset.hoverPoint = String(hit.point.t ?? "");
  }

  hideTip() {
    this.hovered = null;
    this.tip.style.display = "none";
    delete this.el.dataset.hover;
    delete this.el.dataset.hoverPoint;
  }

  /** What is under the mouse after a redraw (points move when new ones widen the axes). */
  rehover() {
    const hit = this.mouse && this.pick(this.mouse[0], this.mouse[1]);
    if (hit) this.showTip(hit); else this.hideTip();
  }

  local(e) {
    const b = this.area.getBoundingClientRect();
    return [e.clientX - b.left, e.clientY - b.top];
  }

  bind() {
    let frame = 0;
    let drag = null;
    this.area.addEventListener("mousemove", (e) => {
      const last = this.local(e);
      this.mouse = last;
      if (drag) {
        const [x0, y0] = drag, [x1, y1] = last;
        Object.assign(this.box.style, { display: "block", left: `${Math.min(x0, x1)}px`, top: `${Math.min(y0, y1)}px`,
          width: `${Math.abs(x1 - x0)}px`, height: `${Math.abs(y1 - y0)}px` });
        return;
      }
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        this.rehover();
        this.area.style.cursor = this.hovered && this.onClick ? "pointer" : "crosshair";
      });
    });
    this.area.addEventListener("mouseleave", () => { this.mouse = null; this.hideTip(); });
    this.area.addEventListener("mousedown", (e) => {
      if (e.button !== 0 || !this.geom) return;
      drag = this.local(e);
      e.preventDefault();
    });
    this.onMouseUp = (e) => {
      if (!drag) return;
      const [x0, y0] = drag;
      const [x1, y1] = this.local(e);
      drag = null;
      this.box.style.display = "none";
      const g = this.geom;
      if (Math.abs(x1 - x0) < 6 && Math.abs(y1 - y0) < 6) {
        const hit = this.pick(x1, y1);
        if (hit && this.onClick) this.onClick(hit.point, hit.layer.id);
        return;
      }
      const cx = (v) => Math.max(g.left, Math.min(g.left + g.w, v));
      const cy = (v) => Math.max(g.top, Math.min(g.top + g.h, v));
      const xs = Math.abs(x1 - x0) >= 6 ? [g.ix(cx(Math.min(x0, x1))), g.ix(cx(Math.max(x0, x1)))] : g.r.x;
      const ys = Math.abs(y1 - y0) >= 6 ? [g.iy(cy(Math.max(y0, y1))), g.iy(cy(Math.min(y0, y1)))] : g.r.y;
      if (xs[1] > xs[0] && ys[1] > ys[0]) { this.zoom = { x: xs, y: ys }; this.hideTip(); this.render(); }
    };
    window.addEventListener("mouseup", this.onMouseUp);
    this.area.addEventListener("dblclick", () => this.resetZoom());
  }

  /** Where a point is on screen (page coordinates), or null when it is not drawn: for tests
   * and keyboard users that want to reach a point the same way a mouse does. */
  locate(match) {
    const g = this.geom;
    if (!g) return null;
    const b = this.area.getBoundingClientRect();
    for (const l of this.visibleLayers().slice().reverse()) {
      for (const p of l.points) {
        if (!match(p, l.id)) continue;
        const x = g.sx(l.x(p)), y = g.sy(l.y(p));
        if (x >= g.left && x <= g.left + g.w && y >= g.top && y <= g.top + g.h) {
          return { x: b.left + x, y: b.top + y, layer: l.id };
        }
      }
    }
    return null;
  }
}

// ---- bars (SVG) --------------------------------------------------------------------------------
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c);
  return el;
}

/**
 * One bar panel per group, stacked, sharing the category axis:
 * panels = [{name, title, color, rows: [{label, value}]}], categories in the first panel's order.
 * Each bar is a <rect class="bar"> with data-group, data-label and data-value, and a <title>.
 */
export function barPanels(el, panels, options = {}) {
  const root = drawBars(el, panels, options);
  // Redraw at the new width when the card is resized (window, sidebar); one observer per element.
  el.barsResizer?.disconnect();
  let drawnWidth = el.clientWidth;
  el.barsResizer = new ResizeObserver(() => {
    if (el.isConnected && el.clientWidth && el.clientWidth !== drawnWidth) {
      drawnWidth = el.clientWidth;
      drawBars(el, panels, options);
    }
  });
  el.barsResizer.observe(el);
  return root;
}

function drawBars(el, panels, { valueText = (v) => String(v) } = {}) {
  theme();
  const width = Math.max(200, el.clientWidth || 600), height = Math.max(120, el.clientHeight || 300);
  const labels = [];
  for (const p of panels) for (const r of p.rows) if (!labels.includes(r.label)) labels.push(r.label);
  const left = 64, right = 12, top = 8, bottom = 90, gap = 18;
  const w = width - left - right;
  const ph = (height - top - bottom - gap * (panels.length - 1)) / Math.max(1, panels.length);
  const band = w / Math.max(1, labels.length);
  const root = svg("svg", { class: "bars", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  panels.forEach((p, i) => {
    const y0 = top + i * (ph + gap);
    const values = p.rows.map((r) => r.value).filter(Number.isFinite);
    if (p.line) values.push(p.line.value);
    const hi = Math.max(0, ...values), lo = Math.min(0, ...values);
    const t = ticks(lo, hi > lo ? hi : lo + 1, 4);
    const top1 = Math.max(hi, t.values[t.values.length - 1]), bot = Math.min(lo, t.values[0]);
    const sy = (v) => y0 + ph - ((v - bot) / ((top1 - bot) || 1)) * ph;
    const g = svg("g", { class: "panel", "data-group": p.name });
    for (const v of t.values) {
      g.append(svg("line", { x1: left, x2: left + w, y1: sy(v), y2: sy(v), stroke: GRID }));
      g.append(svg("text", { x: left - 6, y: sy(v) + 4, "text-anchor": "end", fill: INK, "font-size": 11 }, document.createTextNode(tickText(v, t.step))));
    }
    g.append(svg("text", { x: 12, y: y0 + ph / 2, "text-anchor": "middle", fill: MUTED, "font-size": 11,
      transform: `rotate(-90 12 ${y0 + ph / 2})` }, document.createTextNode(p.title)));
    for (const r of p.rows) {
      const x = left + labels.indexOf(r.label) * band + band * 0.2;
      const ya = sy(Math.max(0, r.value)), yb = sy(Math.min(0, r.value));
      g.append(svg("rect", { class: "bar", x, y: ya, width: band * 0.6, height: Math.max(1, yb - ya), fill: p.color, rx: 2,
        "data-group": p.name, "data-label": r.label, "data-value": r.value },
      svg("title", {}, document.createTextNode(`${r.label}\n${p.title}: ${valueText(r.value)}`))));
    }
    g.append(svg("line", { x1: left, x2: left + w, y1: sy(0), y2: sy(0), stroke: EDGE }));
    if (p.line) { // a reference value across the panel (the compression target)
      const note = p.line.title ? svg("title", {}, document.createTextNode(p.line.title)) : null;
      g.append(svg("line", { class: "target", x1: left, x2: left + w, y1: sy(p.line.value), y2: sy(p.line.value),
        stroke: "#dc2626", "stroke-width": 1.5, "stroke-dasharray": "5 4", "data-value": p.line.value }, note));
      g.append(svg("text", { class: "target-label", x: left + w - 4, y: sy(p.line.value) - 4, "text-anchor": "end",
        fill: "#dc2626", "font-size": 11, "font-weight": 600, stroke: PANEL, "stroke-width": 3, "paint-order": "stroke" },
      document.createTextNode(p.line.label), note?.cloneNode(true))); // a halo: readable over a bar
    }
    root.append(g);
  });
  const yb = top + panels.length * ph + (panels.length - 1) * gap;
  labels.forEach((label, i) => {
    const x = left + (i + 0.5) * band;
    root.append(svg("text", { x, y: yb + 12, "text-anchor": "end", fill: INK, "font-size": 11,
      transform: `rotate(-40 ${x} ${yb + 12})` }, document.createTextNode(label)));
  });
  el.replaceChildren(root);
  return root;
}
