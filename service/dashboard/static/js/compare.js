// Compare jobs: the Pareto fronts of two or more jobs on one chart (#/compare/<id>,<id>,...),
// on the first job's two objectives; a job without one of those metrics is listed, not drawn.
import { api, query } from "./api.js";
import { axisTitle } from "./charts.js";
import { Metrics } from "./metrics.js";
import { Chart } from "./plot.js";
import { badge, clear, escapeHtml, fmt, fmtInt, h } from "./util.js";

const COLORS = ["#4f46e5", "#f59e0b", "#10b981", "#ef4444", "#0ea5e9", "#a855f7", "#64748b", "#db2777"];

export class CompareView {
  constructor(root, ids) {
    this.root = root;
    this.ids = ids;
    this.alive = true;
  }

  async start() {
    clear(this.root, h("div", { class: "center-spinner" }, h("div", { class: "spinner" })));
    let jobs, fronts, mine;
    try {
      [jobs, fronts, mine] = await Promise.all([
        Promise.all(this.ids.map((id) => api(`/jobs/${encodeURIComponent(id)}`))),
        Promise.all(this.ids.map((id) => api(`/jobs/${encodeURIComponent(id)}/pareto`))),
        api(`/jobs${query({ limit: 100 })}`)]);
    } catch (err) {
      if (!this.alive) return;
      clear(this.root, h("div", { class: "empty", id: "compare-missing" }, h("div", { class: "big" }, "Could not load these jobs"),
        err.message, h("div", { style: { marginTop: "14px" } }, h("a", { class: "btn", href: "#/jobs" }, "Back to jobs"))));
      return;
    }
    if (!this.alive) return;
    this.render(jobs, fronts, mine.data);
  }

  render(jobs, fronts, mine) {
    const metrics = new Metrics(jobs[0]);
    const objs = jobs[0].spec.objectives || [];
    const [ox, oy] = objs.length >= 2 ? [objs[1], objs[0]] : [{ metric: "trial_id" }, objs[0]];
    const axis = (o) => ({ label: metrics.title(o.metric), direction: o.direction });
    const layers = [], missing = [];
    jobs.forEach((job, i) => {
      const pts = fronts[i].data.filter((t) => Number.isFinite(t.metrics?.[ox.metric]) && Number.isFinite(t.metrics?.[oy.metric]));
      if (!pts.length) { missing.push(job); return; }
      const color = COLORS[i % COLORS.length];
      layers.push({ id: job.id, name: `${job.name} (${fmtInt(pts.length)})`, points: pts, fill: color, size: 9, alpha: 0.9,
        stroke: "#fff", strokeWidth: 1, x: (t) => t.metrics[ox.metric], y: (t) => t.metrics[oy.metric],
        tip: (t) => `<b>${escapeHtml(job.name)}</b> · trial #${t.trial_id}<br>${escapeHtml(metrics.title(ox.metric))}: `
          + `<b>${fmt(t.metrics[ox.metric], 5)}</b><br>${escapeHtml(metrics.title(oy.metric))}: <b>${fmt(t.metrics[oy.metric], 5)}</b>`
          + "<br><span class=\"hint\">click to open</span>" });
    });
    const others = mine.filter((j) => !this.ids.includes(j.id));
    const add = h("select", { id: "compare-add", "aria-label": "Add a job" },
      h("option", { value: "" }, "Add a job…"), others.map((j) => h("option", { value: j.id }, `${j.name} · ${j.id.slice(0, 8)}`)));
    add.onchange = () => { if (add.value) location.hash = `#/compare/${[...this.ids, add.value].join(",")}`; };
    this.plotEl = h("div", { class: "plot", id: "compare-plot" });
    clear(this.root,
      h("div", { class: "page-head" }, h("div", {},
        h("div", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / compare"),
        h("h1", {}, "Compare Pareto fronts"),
        h("div", { class: "muted", style: { marginTop: "4px" } }, `${jobs.length} jobs · `,
          `${axisTitle(axis(oy))} against ${axisTitle(axis(ox))}`))),
      h("section", { class: "card", style: { marginBottom: "18px" } },
        h("div", { class: "card-head wrap" }, h("h2", {}, "Fronts"), h("span", { class: "grow" }), add),
        h("div", { class: "card-body" }, this.plotEl,
          missing.length ? h("div", { class: "faint", id: "compare-missing-metrics" },
            `Not drawn (no Pareto point with ${ox.metric} and ${oy.metric}): ${missing.map((j) => j.name).join(", ")}`) : null)),
      h("section", { class: "card" }, h("div", { class: "table-wrap" }, h("table", { class: "data", id: "compare-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Status"), h("th", { class: "num" }, "Pareto points"),
          h("th", { class: "num" }, "Hypervolume"), h("th", { class: "num" }, "Best reward"), h("th", {}, ""))),
        h("tbody", {}, jobs.map((j, i) => h("tr", { dataset: { jobId: j.id } },
          h("td", { class: "name" }, h("span", { class: "swatch", style: { background: COLORS[i % COLORS.length] } }),
            h("a", { href: `#/jobs/${j.id}` }, j.name)),
          h("td", {}, badge(j.status)), h("td", { class: "num" }, fmtInt(fronts[i].count)),
          h("td", { class: "num" }, fmt(j.hypervolume)), h("td", { class: "num" }, fmt(j.best_reward)),
          h("td", {}, this.ids.length > 2 ? h("a", { class: "btn small ghost", href: `#/compare/${this.ids.filter((x) => x !== j.id).join(",")}` }, "Remove") : null))))))));
    this.chart = new Chart(this.plotEl, { download: "compare-fronts",
      onClick: (t, layer) => { location.hash = `#/jobs/${layer}/trials/${t.trial_id}`; } });
    this.chart.draw({ key: "compare", x: { title: axisTitle(axis(ox)) }, y: { title: axisTitle(axis(oy)) }, color: null,
      lines: [], layers, hover: "closest", hoverDistance: 12, empty: "None of these jobs has a Pareto point yet" });
    this.plotEl.dataset.jobs = String(layers.length);
    this.plotEl.dataset.points = String(layers.reduce((n, l) => n + l.points.length, 0));
  }

  destroy() {
    this.alive = false;
    this.chart?.destroy();
  }
}
