// What the job page's charts show: the Pareto scatter, the step series and the per-layer policy
// bars, as specs for the small chart module (plot.js).
import { escapeHtml, fmt } from "./util.js";

const ACCENT = "#4f46e5";

export function axisTitle(ax) {
  if (!ax) return "";
  const arrow = ax.direction === "max" ? "  ↑ better" : ax.direction === "min" ? "  ↓ better" : "";
  return `${ax.label}${arrow}`;
}

function archLines(key) {
  if (!key) return "";
  const parts = key.includes("+") ? key.split("+") : key.match(/.{1,56}(\s|\||,|$)|.{1,56}/g) || [key];
  return parts.slice(0, 8).map((p) => escapeHtml(p)).join("<br>");
}

/** The Pareto view of a ParetoModel (see pareto.js): faded dominated points, the front as a
 * step line, Pareto points on top, the best trial as a star; a third axis as colour. */
export function paretoFigure(model) {
  const { x, y, color } = model.selection;
  const ax = model.axis(x), ay = model.axis(y), ac = color ? model.axis(color) : null;
  const pts = model.drawable();
  const dominated = pts.filter((p) => !p.f);
  const front = pts.filter((p) => p.f);
  let cmin = Infinity, cmax = -Infinity;
  if (ac) {
    for (const p of pts) {
      const v = p.vals[color];
      if (Number.isFinite(v)) { if (v < cmin) cmin = v; if (v > cmax) cmax = v; }
    }
  }
  const hasColor = ac && cmin <= cmax;
  const tip = (p) => {
    if (p.hover) return p.hover;
    const rows = [`<b>Trial #${p.t}</b>${p.f ? "  ·  Pareto" : ""}${p.t === model.best ? "  ·  best" : ""}`];
    const shown = [x, y, color, ...model.objectiveKeys, "reward"]
      .filter((k, i, a) => k && k !== "trial_id" && a.indexOf(k) === i);
    for (const k of shown) {
      const v = p.vals[k];
      if (v !== undefined && v !== null) rows.push(`${escapeHtml(model.axis(k)?.label || k)}: <b>${fmt(v, 5)}</b>`);
    }
    if (p.k) rows.push(`<span class="mono arch">${archLines(p.k)}</span>`);
    rows.push('<span class="hint">click to open</span>');
    p.hover = rows.join("<br>");
    return p.hover;
  };
  const px = (p) => p.x, py = (p) => p.y;
  const value = hasColor ? (p) => p.vals[color] : null;
  const layers = [
    { id: "dominated", name: "Dominated", points: dominated, x: px, y: py, value, tip,
      size: 6, alpha: 0.28, fill: "#94a3b8" },
    { id: "front", name: "Pareto points", points: front, x: px, y: py, value, tip,
      size: 10, alpha: 1, fill: ACCENT, stroke: "#1e1b4b", strokeWidth: 1.2 },
  ];
  const best = pts.find((p) => p.t === model.best);
  if (best) {
    layers.push({ id: "best", name: "Best reward", points: [best], x: px, y: py, tip, marker: "star",
      size: 17, fill: "#f59e0b", stroke: "#fff", strokeWidth: 1 });
  }
  const line = model.frontLine();
  const spec = {
    key: `${x}|${y}`,
    x: { title: axisTitle(ax) }, y: { title: axisTitle(ay) },
    color: hasColor ? { title: ac.label, min: cmin, max: cmax } : null,
    lines: line ? [{ id: "frontline", name: "Pareto front", x: line.x, y: line.y, shape: line.shape, color: ACCENT, width: 2 }] : [],
    layers, hover: "closest", hoverDistance: 12,
  };
  return { spec, counts: { points: pts.length, front: front.length, dominated: dominated.length } };
}

/** A step line (value after each change) extended to the latest evaluation, with a marker per change. */
export function stepFigure(points, last, { name, color, ytitle, empty = null }) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  if (points.length && last !== null && last !== undefined && last > xs[xs.length - 1]) {
    xs.push(last); ys.push(ys[ys.length - 1]);
  }
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
  const xmax = xs.length ? Math.max(...xs) : 1;
  const changes = points.map((p) => ({ t: p[0], v: p[1] }));
  return {
    spec: {
      key: "series",
      x: { title: "evaluations", range: [0, xmax > 0 ? xmax * 1.02 : 1] },
      y: { title: ytitle, range: [lo - pad, hi + pad] },
      color: null,
      lines: [{ id: "line", name, x: xs, y: ys, shape: "hv", color, width: 2.2, fill: `${color}14`, legend: false }],
      layers: [{ id: "changes", name: "changes", points: changes, x: (p) => p.t, y: (p) => p.v, size: 5, fill: color, legend: false,
        tip: (p) => `evaluation ${p.t}<br>${escapeHtml(name)}: <b>${fmt(p.v, 5)}</b>` }],
      hover: "x", empty,
    },
  };
}

const POLICY_LABELS = { prune: "pruned fraction", sparsity: "sparsity", bits: "weight bits", share: "codebook bits" };
const POLICY_COLORS = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444"];

/** Per-layer decisions ("control:layer" -> number) as one bar panel per control. */
export function policyFigure(groups) {
  return Object.keys(groups).map((c, i) => ({
    name: c, title: POLICY_LABELS[c] || c, color: POLICY_COLORS[i % POLICY_COLORS.length],
    rows: groups[c].map((r) => ({ label: r.layer, value: r.value })),
  }));
}
