// Plotly figures: the Pareto scatter, the step series and the per-layer policy bars.
import { escapeHtml, fmt } from "./util.js";

export const plotlyReady = new Promise((resolve, reject) => {
  const ready = () => { performance.mark("plotly-ready"); resolve(window.Plotly); };
  if (window.Plotly) { ready(); return; }
  const script = document.getElementById("plotly-script");
  script.addEventListener("load", ready);
  script.addEventListener("error", () => reject(new Error("Plotly.js did not load (pip install plotly on the server)")));
});

/** WebGL redraws thousands of points far faster than SVG; without it, SVG still works.
 * localStorage "lightsearch.renderer" = "svg" | "webgl" overrides the choice. */
export const WEBGL = (() => {
  const forced = localStorage.getItem("lightsearch.renderer");
  if (forced === "svg") return false;
  try { return !!document.createElement("canvas").getContext("webgl"); } catch { return false; }
})();

const INK = "#374151";
const GRID = "#f0f1f5";
const ACCENT = "#4f46e5";
const FAMILY = 'Inter, ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';

export const CONFIG = {
  displaylogo: false, responsive: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
  toImageButtonOptions: { format: "png", scale: 2 },
};

function axis(extra = {}) {
  return { gridcolor: GRID, zerolinecolor: "#e5e7eb", linecolor: "#e5e7eb", ticks: "outside", tickcolor: "#e5e7eb",
    automargin: true, title: { font: { size: 12, color: "#6b7280" } }, ...extra };
}

export function baseLayout(extra = {}) {
  return {
    font: { family: FAMILY, size: 12, color: INK },
    margin: { l: 56, r: 16, t: 8, b: 44 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
    hoverlabel: { bgcolor: "#111827", bordercolor: "#111827", font: { color: "#fff", family: FAMILY, size: 12 }, align: "left" },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 12 } },
    xaxis: axis(), yaxis: axis(),
    ...extra,
  };
}

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

/** Plotly traces for the Pareto view of a ParetoModel (see pareto.js). */
export function paretoFigure(model) {
  const { x, y, color } = model.selection;
  const ax = model.axis(x), ay = model.axis(y), ac = color ? model.axis(color) : null;
  const pts = model.drawable();
  const dominated = pts.filter((p) => !p.f);
  const front = pts.filter((p) => p.f);
  const cvals = ac ? pts.map((p) => p.vals[color]).filter((v) => Number.isFinite(v)) : [];
  let cmin = Infinity, cmax = -Infinity;
  for (const v of cvals) { if (v < cmin) cmin = v; if (v > cmax) cmax = v; }
  const hover = (p) => {
    if (p.hover) return p.hover;
    const rows = [`<b>Trial #${p.t}</b>${p.f ? "  ·  Pareto" : ""}${p.t === model.best ? "  ·  best" : ""}`];
    const shown = [x, y, color, ...model.objectiveKeys, "reward"]
      .filter((k, i, a) => k && k !== "trial_id" && a.indexOf(k) === i);
    for (const k of shown) {
      const v = p.vals[k];
      if (v !== undefined && v !== null) rows.push(`${escapeHtml(model.axis(k)?.label || k)}: <b>${fmt(v, 5)}</b>`);
    }
    if (p.k) rows.push(`<span style="font-family:monospace;font-size:11px">${archLines(p.k)}</span>`);
    p.hover = rows.join("<br>");
    return p.hover;
  };
  const marker = (set, extra) => ({
    color: ac ? set.map((p) => p.vals[color]) : undefined,
    colorscale: "Viridis", cmin: ac ? cmin : undefined, cmax: ac ? cmax : undefined,
    ...extra,
  });
  const traces = [];
  traces.push({
    type: WEBGL ? "scattergl" : "scatter", uid: "dominated", mode: "markers", name: "Dominated",
    x: dominated.map((p) => p.x), y: dominated.map((p) => p.y),
    customdata: dominated.map((p) => p.t), text: dominated.map(hover), hovertemplate: "%{text}<extra></extra>",
    marker: marker(dominated, { size: 6, opacity: 0.28, color: ac ? dominated.map((p) => p.vals[color]) : "#94a3b8",
      showscale: !!ac, colorbar: ac ? { title: { text: ac.label, side: "right", font: { size: 12 } }, thickness: 10, len: 0.85, outlinewidth: 0 } : undefined }),
  });
  const line = model.frontLine();
  if (line) {
    traces.push({ type: "scatter", uid: "frontline", mode: "lines", name: "Pareto front", x: line.x, y: line.y, hoverinfo: "skip",
      line: { shape: line.shape, color: ACCENT, width: 2 } });
  }
  traces.push({
    type: "scatter", uid: "front", mode: "markers", name: "Pareto points", x: front.map((p) => p.x), y: front.map((p) => p.y),
    customdata: front.map((p) => p.t), text: front.map(hover), hovertemplate: "%{text}<extra></extra>",
    marker: marker(front, { size: 10, opacity: 1, color: ac ? front.map((p) => p.vals[color]) : ACCENT,
      line: { color: "#1e1b4b", width: 1.2 } }),
  });
  const best = pts.find((p) => p.t === model.best);
  if (best) {
    traces.push({ type: "scatter", uid: "best", mode: "markers", name: "Best reward", x: [best.x], y: [best.y], customdata: [best.t],
      text: [hover(best)], hovertemplate: "%{text}<extra></extra>",
      marker: { symbol: "star", size: 17, color: "#f59e0b", line: { color: "#fff", width: 1 } } });
  }
  const layout = baseLayout({
    xaxis: axis({ title: { text: axisTitle(ax), font: { size: 12, color: "#6b7280" } } }),
    yaxis: axis({ title: { text: axisTitle(ay), font: { size: 12, color: "#6b7280" } } }),
    uirevision: `${x}|${y}`, hovermode: "closest", hoverdistance: 12,
    margin: { l: 60, r: 10, t: 8, b: 48 },
  });
  return { traces, layout, counts: { points: pts.length, front: front.length, dominated: dominated.length } };
}

/** A step line (value after each change) extended to the latest trial. */
export function stepFigure(points, last, { name, color, ytitle }) {
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  if (points.length && last !== null && last !== undefined && last > xs[xs.length - 1]) {
    xs.push(last); ys.push(ys[ys.length - 1]);
  }
  const traces = [{
    type: "scatter", mode: "lines", name, x: xs, y: ys, line: { shape: "hv", color, width: 2.2 },
    fill: "tozeroy", fillcolor: `${color}14`, hovertemplate: `trial %{x}<br>${escapeHtml(name)}: <b>%{y:.5g}</b><extra></extra>`,
  }, {
    type: "scatter", mode: "markers", name: "changes", x: points.map((p) => p[0]), y: points.map((p) => p[1]),
    marker: { size: 5, color }, hoverinfo: "skip", showlegend: false,
  }];
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
  const layout = baseLayout({
    showlegend: false,
    xaxis: axis({ title: { text: "trials", font: { size: 12, color: "#6b7280" } }, rangemode: "tozero" }),
    yaxis: axis({ title: { text: ytitle, font: { size: 12, color: "#6b7280" } }, range: [lo - pad, hi + pad] }),
    margin: { l: 60, r: 12, t: 8, b: 44 }, uirevision: "keep",
  });
  return { traces, layout };
}

const POLICY_LABELS = { prune: "pruned fraction", sparsity: "sparsity", bits: "weight bits", share: "codebook bits" };
const POLICY_COLORS = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444"];

/** Per-layer decisions ("control:layer" -> number) as one bar panel per control. */
export function policyFigure(groups) {
  const controls = Object.keys(groups);
  const n = controls.length;
  const gap = 0.08;
  const h = (1 - gap * (n - 1)) / n;
  const traces = [];
  const layout = baseLayout({ showlegend: false, margin: { l: 60, r: 12, t: 8, b: 80 }, bargap: 0.4 });
  controls.forEach((c, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    const rows = groups[c];
    traces.push({
      type: "bar", name: c, x: rows.map((r) => r.layer), y: rows.map((r) => r.value), xaxis: "x", yaxis: `y${suffix}`,
      marker: { color: POLICY_COLORS[i % POLICY_COLORS.length] },
      hovertemplate: `%{x}<br>${escapeHtml(POLICY_LABELS[c] || c)}: <b>%{y}</b><extra></extra>`,
    });
    const top = 1 - i * (h + gap);
    layout[`yaxis${suffix}`] = axis({ domain: [top - h, top], title: { text: POLICY_LABELS[c] || c, font: { size: 11, color: "#6b7280" } } });
  });
  layout.xaxis = axis({ tickangle: -40, automargin: true, type: "category", anchor: `y${n > 1 ? n : ""}` });
  return { traces, layout };
}
