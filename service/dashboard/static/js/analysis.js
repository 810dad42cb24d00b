// The job page's analysis card: decision importance per objective, parallel coordinates with
// brushing (the brushes filter the trials table) and slices (each decision's choices against a
// metric). The server computes all three (analysis routes); this module only draws them.
import { api, query } from "./api.js";
import { ticks, tickText, viridis } from "./plot.js";
import { clear, fmt, fmtInt, h } from "./util.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const PC_ROWS = 1500; // parallel-coordinate lines drawn (Pareto points always among them)
const BINS = 32;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

export class AnalysisCard {
  constructor(jobId, { metrics, objectives, onBrush }) {
    this.jobId = jobId;
    this.metrics = metrics; // Metrics (metrics.js)
    this.objectives = objectives;
    this.onBrush = onBrush;
    this.tab = "importance";
    this.loaded = {};
    this.views = {
      importance: h("div", { class: "analysis-view", id: "importance-view" }),
      parallel: h("div", { class: "analysis-view", id: "parallel-view" }),
      slices: h("div", { class: "analysis-view", id: "slices-view" }),
    };
    const names = { importance: "Importance", parallel: "Parallel coordinates", slices: "Slices" };
    this.tabs = h("div", { class: "tabs", role: "tablist" }, Object.keys(names).map((k) => h("button", {
      type: "button", class: k === this.tab ? "active" : "", dataset: { view: k }, id: `tab-${k}`,
      onclick: () => this.show(k) }, names[k])));
    this.note = h("span", { class: "sub grow", id: "analysis-note" });
    this.el = h("section", { class: "card", id: "analysis-card" },
      h("div", { class: "card-head wrap" }, h("h2", {}, "Analysis"), this.tabs, this.note),
      h("div", { class: "card-body" }, Object.values(this.views)));
    for (const [k, v] of Object.entries(this.views)) v.hidden = k !== this.tab;
  }

  /** Draw the first view once the job has trials; again when asked (the job moved on). */
  start() { this.show(this.tab); }

  refresh() {
    this.loaded = {};
    this.show(this.tab);
  }

  show(tab) {
    this.tab = tab;
    this.note.textContent = this.notes?.[tab] || "";
    for (const b of this.tabs.children) b.classList.toggle("active", b.dataset.view === tab);
    for (const [k, v] of Object.entries(this.views)) v.hidden = k !== tab;
    if (!this.loaded[tab]) { this.loaded[tab] = true; this.load(tab); }
  }

  async load(tab) {
    const el = this.views[tab];
    const t0 = performance.now();
    el.dataset.state = "loading";
    if (!el.firstChild) clear(el, h("div", { class: "empty" }, h("div", { class: "spinner" })));
    const id = encodeURIComponent(this.jobId);
    try {
      if (tab === "importance") this.drawImportance(await api(`/dashboard/jobs/${id}/importance`));
      if (tab === "parallel") this.drawParallel(await api(`/dashboard/jobs/${id}/parallel${query({ max_rows: PC_ROWS })}`));
      if (tab === "slices") await this.loadSlices(this.sliceMetric);
    } catch (err) {
      this.loaded[tab] = false;
      clear(el, h("div", { class: "empty" }, h("div", { class: "big" }, "Could not compute this view"), err.message));
    }
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    el.dataset.state = "drawn";
    el.dataset.ms = String(Math.round(performance.now() - t0));
  }

  setNote(tab, text) {
    (this.notes ||= {})[tab] = text;
    if (this.tab === tab) this.note.textContent = text;
  }

  empty(el, text) {
    clear(el, h("div", { class: "empty" }, h("div", { class: "big" }, "Nothing to analyse yet"), text));
  }

  // ---- importance --------------------------------------------------------------------------
  drawImportance(data) {
    const el = this.views.importance;
    const ready = data.objectives.filter((o) => Object.keys(o.values).length);
    this.setNote("importance", `${data.evaluator} · how much each decision sets each objective apart`);
    if (!ready.length) {
      this.empty(el, "Decision importance appears here once 10 trials have completed.");
      return;
    }
    clear(el, h("div", { class: "importance" }, ready.map((o) => {
      const rows = Object.entries(o.values).sort((a, b) => b[1] - a[1]);
      const top = rows.length ? rows[0][1] || 1 : 1;
      return h("div", { class: "imp-block", dataset: { metric: o.metric } },
        h("div", { class: "imp-title" }, this.metrics.title(o.metric), " ",
          h("span", { class: "faint" }, `${o.direction === "max" ? "↑" : "↓"} · ${fmtInt(o.trials)} trials`)),
        rows.map(([name, v]) => h("div", { class: "imp-row", dataset: { decision: name, value: String(v) }, title: `${name}: ${fmt(v, 3)}` },
          h("span", { class: "imp-name mono" }, name),
          h("span", { class: "imp-bar" }, h("span", { style: { width: `${(100 * v) / top}%` } })),
          h("span", { class: "imp-val" }, `${(100 * v).toFixed(1)}%`))));
    })));
  }

  // ---- slices ------------------------------------------------------------------------------
  async loadSlices(metric) {
    const el = this.views.slices;
    const data = await api(`/dashboard/jobs/${encodeURIComponent(this.jobId)}/slices${query({ metric: metric ? `metrics.${metric}` : null })}`);
    this.sliceMetric = data.metric;
    this.setNote("slices", `each decision's choices against ${this.metrics.title(data.metric)}`);
    const names = [...new Set([...this.objectives.map((o) => o.metric), ...(this.metricNames || [])])];
    const pick = h("select", { id: "slice-metric", "aria-label": "Metric", onchange: () => {
      this.loadSlices(pick.value).catch(() => {});
    } }, names.map((n) => h("option", { value: n, selected: n === data.metric }, this.metrics.title(n))));
    if (!data.decisions.length) {
      clear(el, h("div", { class: "row" }, pick));
      el.append(h("div", { class: "empty" }, h("div", { class: "big" }, "Nothing to analyse yet"),
        "Slices appear here once trials with different choices have completed."));
      return;
    }
    clear(el, h("div", { class: "row", style: { marginBottom: "10px" } }, h("label", { class: "field" }, "Metric", pick),
      h("span", { class: "faint" }, "box: 25–75% of trials with that choice, whiskers 10–90%, line: median, dot: mean")),
    h("div", { class: "slices" }, data.decisions.map((d) => slicePanel(d, this.metrics, data.metric))));
  }

  // ---- parallel coordinates ----------------------------------------------------------------
  drawParallel(data) {
    const el = this.views.parallel;
    if (!data.shown) {
      this.empty(el, "Parallel coordinates appear here once a trial has completed.");
      return;
    }
    const first = this.objectives[0];
    const color = first ? `metrics.${first.metric}` : null;
    this.setNote("parallel", first ? `colour: ${this.metrics.title(first.metric)}, better in yellow (drawn on top)` : "");
    this.pc = new ParallelCoords(data, { metrics: this.metrics, color, better: first?.direction || "max",
      onBrush: (where) => this.onBrush(where) });
    this.pcNote = h("span", { class: "faint", id: "parallel-note" });
    clear(el, h("div", { class: "row", style: { marginBottom: "8px" } }, this.pcNote,
      h("span", { style: { flex: 1 } }),
      h("button", { class: "btn small", type: "button", id: "clear-brushes", onclick: () => this.pc.clear() }, "Clear brushes")),
    this.pc.el);
    this.pc.onCount = (n) => {
      this.pcNote.textContent = `${fmtInt(n)} of ${fmtInt(data.shown)} lines in the brushes`
        + (data.total > data.shown ? ` (${fmtInt(data.shown)} of ${fmtInt(data.total)} trials drawn, Pareto points kept)` : "")
        + " · drag along an axis to brush; the table follows";
    };
    this.pc.draw();
  }
}

function slicePanel(d, metrics, metric) {
  const width = 300, height = 190, left = 48, right = 8, top = 10, bottom = 46;
  const rows = d.choices;
  const present = rows.filter((r) => r.n);
  let lo = Math.min(...present.map((r) => r.q[0])), hi = Math.max(...present.map((r) => r.q[4]));
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const t = ticks(lo, hi, 4);
  const y0 = Math.min(lo, t.values[0]), y1 = Math.max(hi, t.values[t.values.length - 1]);
  const sy = (v) => top + (height - top - bottom) * (1 - (v - y0) / (y1 - y0 || 1));
  const band = (width - left - right) / rows.length;
  const ink = css("--chart-ink", "#374151"), grid = css("--line-2", "#f0f1f5"), accent = css("--accent", "#4f46e5");
  const root = svg("svg", { class: "slice-svg", viewBox: `0 0 ${width} ${height}`, role: "img" });
  for (const v of t.values) {
    root.append(svg("line", { x1: left, x2: width - right, y1: sy(v), y2: sy(v), stroke: grid }));
    root.append(svg("text", { x: left - 5, y: sy(v) + 4, "text-anchor": "end", "font-size": 10, fill: ink }, tickText(v, t.step)));
  }
  rows.forEach((r, i) => {
    const cx = left + (i + 0.5) * band, bw = Math.min(28, band * 0.5);
    const label = String(r.choice);
    root.append(svg("text", { x: cx, y: height - bottom + 14, "text-anchor": "middle", "font-size": 10, fill: ink },
      label.length > 12 ? `${label.slice(0, 11)}…` : label));
    root.append(svg("text", { x: cx, y: height - bottom + 27, "text-anchor": "middle", "font-size": 9, fill: ink, opacity: 0.6 }, `n=${r.n}`));
    if (!r.n) return;
    const g = svg("g", { class: "box", "data-choice": label, "data-median": r.q[2] });
    g.append(svg("line", { x1: cx, x2: cx, y1: sy(r.q[0]), y2: sy(r.q[4]), stroke: accent }));
    g.append(svg("rect", { class: "box", x: cx - bw / 2, y: sy(r.q[3]), width: bw, height: Math.max(1, sy(r.q[1]) - sy(r.q[3])),
      fill: `${accent}33`, stroke: accent, rx: 2 }));
    g.append(svg("line", { x1: cx - bw / 2, x2: cx + bw / 2, y1: sy(r.q[2]), y2: sy(r.q[2]), stroke: accent, "stroke-width": 2 }));
    g.append(svg("circle", { cx, cy: sy(r.mean), r: 2.5, fill: ink }));
    g.append(svg("title", {}, `${d.decision} = ${label}\n${r.n} trials\nmedian ${fmt(r.q[2], 4)}, mean ${fmt(r.mean, 4)}\n`
      + `10–90%: ${fmt(r.q[0], 4)} – ${fmt(r.q[4], 4)}`));
    root.append(g);
  });
  root.append(svg("text", { class: "y-title", x: 10, y: (height - bottom) / 2, "text-anchor": "middle", "font-size": 10, fill: ink,
    transform: `rotate(-90 10 ${(height - bottom) / 2})` }, metrics.title(metric)));
  return h("div", { class: "slice", dataset: { decision: d.decision } }, h("div", { class: "slice-title mono" }, d.decision), root);
}

/** Parallel coordinates on a canvas: one vertical axis per decision (its choices) and metric
 * (its range); one line per trial, coloured by the first objective. Drag along an axis to
 * brush a range; lines outside any brush fade, and ``onBrush`` gets the filter the trials
 * table applies on the server. */
export class ParallelCoords {
  constructor(data, { metrics, color, better = "max", onBrush }) {
    this.data = data;
    this.better = better;
    this.metrics = metrics;
    this.onBrush = onBrush;
    this.onCount = null;
    this.dims = data.dims;
    this.colorDim = this.dims.find((d) => d.key === color) || this.dims.find((d) => d.kind === "metric") || null;
    this.brushes = new Map(); // key -> [lo, hi] in axis units (decision: choice index)
    this.canvas = h("canvas", { class: "pc-canvas" });
    this.el = h("div", { class: "pc", id: "parallel-plot" }, h("div", { class: "pc-scroll" }, this.canvas));
    this.el.pcoords = this;
    this.bind();
    this.resizer = new ResizeObserver(() => this.draw());
    this.resizer.observe(this.el);
  }

  geometry() {
    // At least 84 px between axes: on a phone the plot scrolls inside its card instead.
    const side = 40, right = 64;
    const width = Math.max(this.el.clientWidth, side + right + 84 * Math.max(1, this.dims.length - 1), 320);
    const height = 360, top = 34, bottom = 28;
    const step = (width - side - right) / Math.max(1, this.dims.length - 1);
    const axes = this.dims.map((d, i) => {
      const x = side + i * step;
      const [lo, hi] = d.kind === "decision" ? [-0.5, d.choices.length - 0.5] : pad(d.range);
      const sy = (v) => top + (height - top - bottom) * (1 - (v - lo) / (hi - lo));
      const iv = (y) => lo + (1 - (y - top) / (height - top - bottom)) * (hi - lo);
      return { d, x, lo, hi, sy, iv };
    });
    return { width, height, top, bottom, axes, step };
  }

  /** An axis's title: a metric's label and unit from the registry, a decision's name. */
  axisTitle(d) {
    return d.kind === "metric" ? this.metrics.title(d.name) : d.name;
  }

  /** {axis key: title} of every axis, left to right (what the canvas draws on top). */
  axisTitles() {
    return Object.fromEntries(this.dims.map((d) => [d.key, this.axisTitle(d)]));
  }

  /** Where an axis value is on the page: tests and keyboard users brush the way a mouse does. */
  locate(key, value) {
    const g = this.geom || this.geometry();
    const a = g.axes.find((ax) => ax.d.key === key);
    if (!a) return null;
    const b = this.canvas.getBoundingClientRect();
    return { x: b.left + a.x, y: b.top + a.sy(value) };
  }

  inBrush(i) {
    for (const [key, [lo, hi]] of this.brushes) {
      const v = this.dims.find((d) => d.key === key).values[i];
      if (v === null || v === undefined || v < lo || v > hi) return false;
    }
    return true;
  }

  draw() {
    const g = this.geometry();
    this.geom = g;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(g.width * dpr);
    this.canvas.height = Math.round(g.height * dpr);
    this.canvas.style.width = `${g.width}px`;
    this.canvas.style.height = `${g.height}px`;
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);
    const n = this.data.t.length;
    const cd = this.colorDim;
    const [cmin, cmax] = cd ? cd.range || [0, 1] : [0, 1];
    const flip = this.better === "min"; // yellow is always the better end
    const faded = new Path2D();
    const bins = Array.from({ length: BINS }, () => new Path2D());
    let inside = 0;
    for (let i = 0; i < n; i += 1) {
      const hit = this.inBrush(i);
      let path = faded;
      if (hit) {
        inside += 1;
        const v = cd ? cd.values[i] : null;
        const u = Number.isFinite(v) ? (v - cmin) / ((cmax - cmin) || 1) : 0;
        path = bins[Math.round((flip ? 1 - u : u) * (BINS - 1))];
      }
      let started = false;
      for (const a of g.axes) {
        const v = a.d.values[i];
        if (v === null || v === undefined) { started = false; continue; }
        // Lines through one choice spread over a band, so the mix of paths shows.
        const y = a.d.kind === "decision" ? a.sy(v + JITTER[i % JITTER.length]) : a.sy(v);
        if (started) path.lineTo(a.x, y); else { path.moveTo(a.x, y); started = true; }
      }
    }
    ctx.lineWidth = 1;
    ctx.globalAlpha = 0.5;
    ctx.strokeStyle = css("--line", "#e5e7eb");
    ctx.stroke(faded);
    ctx.globalAlpha = n > 500 ? 0.25 : 0.55;
    bins.forEach((p, k) => { ctx.strokeStyle = viridis(k / (BINS - 1)); ctx.stroke(p); });
    ctx.globalAlpha = 1;
    this.axes(ctx, g);
    this.inside = inside;
    this.el.dataset.lines = String(n);
    this.el.dataset.inside = String(inside);
    this.el.dataset.brushes = String(this.brushes.size);
    this.onCount?.(inside);
  }

  axes(ctx, g) {
    const ink = css("--chart-ink", "#374151"), muted = css("--muted", "#6b7280");
    ctx.font = "11px system-ui, sans-serif";
    for (const a of g.axes) {
      ctx.strokeStyle = ink;
      ctx.beginPath();
      ctx.moveTo(a.x + 0.5, g.top);
      ctx.lineTo(a.x + 0.5, g.height - g.bottom);
      ctx.stroke();
      ctx.fillStyle = ink;
      ctx.textAlign = "center";
      wrapTitle(ctx, this.axisTitle(a.d), a.x, 12, g.step - 6);
      ctx.textAlign = "left";
      ctx.fillStyle = muted;
      if (a.d.kind === "decision") {
        a.d.choices.forEach((c, k) => {
          const text = fitText(ctx, String(c), g.step - 10);
          const w = ctx.measureText(text).width;
          ctx.fillStyle = css("--card", "#fff");
          ctx.globalAlpha = 0.85;
          ctx.fillRect(a.x + 3, a.sy(k) - 7, w + 2, 13);
          ctx.globalAlpha = 1;
          ctx.fillStyle = muted;
          ctx.fillText(text, a.x + 4, a.sy(k) + 4);
        });
      } else {
        const t = ticks(a.lo, a.hi, 4);
        for (const v of t.values) if (v >= a.lo && v <= a.hi) ctx.fillText(tickText(v, t.step), a.x + 4, a.sy(v) + 4);
      }
      const b = this.brushes.get(a.d.key);
      if (b) {
        ctx.fillStyle = "rgba(79, 70, 229, .18)";
        ctx.strokeStyle = "#4f46e5";
        const y0 = a.sy(b[1]), y1 = a.sy(b[0]);
        ctx.fillRect(a.x - 7, y0, 14, y1 - y0);
        ctx.strokeRect(a.x - 7 + 0.5, y0 + 0.5, 13, y1 - y0 - 1);
      }
    }
  }

  nearestAxis(x) {
    let best = null;
    for (const a of this.geom.axes) if (!best || Math.abs(a.x - x) < Math.abs(best.x - x)) best = a;
    return best && Math.abs(best.x - x) <= 24 ? best : null;
  }

  bind() {
    let drag = null;
    const pos = (e) => { const b = this.canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };
    this.canvas.addEventListener("pointerdown", (e) => {
      if (!this.geom) return;
      const [x, y] = pos(e);
      const a = this.nearestAxis(x);
      if (!a) return;
      drag = { a, y0: y };
      this.canvas.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const [, y] = pos(e);
      this.setBrush(drag.a, drag.y0, y, false);
    });
    const end = (e) => {
      if (!drag) return;
      const [, y] = pos(e);
      const { a, y0 } = drag;
      drag = null;
      if (Math.abs(y - y0) < 4) this.brushes.delete(a.d.key); // a tap on an axis clears its brush
      else this.setBrush(a, y0, y, false);
      this.draw();
      this.emit();
    };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", () => { drag = null; });
  }

  setBrush(a, y0, y1, emit = true) {
    const lo = a.iv(Math.max(y0, y1)), hi = a.iv(Math.min(y0, y1));
    this.brushes.set(a.d.key, [lo, hi]);
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
    if (emit) this.emit();
  }

  /** Brush a value range of one axis (as a drag would). */
  brush(key, lo, hi) {
    const a = (this.geom || this.geometry()).axes.find((ax) => ax.d.key === key);
    this.brushes.set(a.d.key, [lo, hi]);
    this.draw();
    this.emit();
  }

  clear() {
    this.brushes.clear();
    this.draw();
    this.emit();
  }

  /** The brushes as the trials route's ``where`` filter (null: no brush). */
  where() {
    if (!this.brushes.size) return null;
    const ranges = {}, choices = {};
    for (const [key, [lo, hi]] of this.brushes) {
      const d = this.dims.find((x) => x.key === key);
      if (d.kind === "metric") ranges[key] = [lo, hi];
      else choices[d.name] = d.choices.filter((_, k) => k >= lo && k <= hi);
    }
    // A brush over no choice selects nothing: the table shows that without asking the server.
    return { ranges, choices };
  }

  emit() {
    this.onBrush?.(this.where());
  }
}

// Offsets within a choice's band (golden-ratio sequence: even, no clumps).
const JITTER = Array.from({ length: 97 }, (_, i) => (((i * 0.618034) % 1) - 0.5) * 0.5);

function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(`${t}…`).width > width) t = t.slice(0, -1);
  return `${t}…`;
}

function pad([lo, hi]) {
  if (!(hi > lo)) return [lo - 1, hi + 1];
  const d = (hi - lo) * 0.04;
  return [lo - d, hi + d];
}

function wrapTitle(ctx, text, x, y, width) {
  const words = text.split(" ");
  let line = "", lines = [];
  for (const w of words) {
    const next = line ? `${line} ${w}` : w;
    if (ctx.measureText(next).width > width && line) { lines.push(line); line = w; } else line = next;
  }
  lines.push(line);
  lines = lines.slice(0, 2);
  lines.forEach((l, i) => ctx.fillText(l, x, y + i * 12 - (lines.length - 1) * 6));
}
