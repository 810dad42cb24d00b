// The trials table: paging, sorting and filtering happen on the server.
import { api, query } from "./api.js";
import { artifactUrl, badge, clear, debounce, fmt, fmtDuration, fmtInt, h, icon } from "./util.js";

const STATES = ["", "complete", "failed", "invalid", "pruned", "running"];

export class TrialsTable {
  constructor(jobId, { objectives, metricNames, metrics, onOpen }) {
    this.jobId = jobId;
    this.objectives = objectives; // [{metric, direction}]
    this.metricNames = metricNames; // other metric names (agent-visible)
    this.metrics = metrics; // labels and units (metrics.js)
    this.onOpen = onOpen;
    this.params = { offset: 0, limit: 25, sort: "trial_id", order: "desc", state: "", front: false,
      metric: "", min: "", max: "", q: "", repeats: true, where: null };
    this.seq = 0;
    this.el = this.build();
  }

  columns() {
    const cols = [{ key: "trial_id", label: "Trial", sort: "trial_id", num: false }, { key: "state", label: "State" }];
    for (const o of this.objectives) {
      cols.push({ key: `metrics.${o.metric}`, label: `${this.metrics.title(o.metric)} ${o.direction === "max" ? "↑" : "↓"}`,
        sort: `metrics.${o.metric}`, num: true });
    }
    cols.push({ key: "reward", label: "Reward", sort: "reward", num: true, title: this.metrics.formula || null });
    for (const m of this.metricNames.slice(0, 3)) cols.push({ key: `metrics.${m}`, label: this.metrics.title(m), sort: `metrics.${m}`, num: true });
    cols.push({ key: "duration_s", label: "Time", sort: "duration_s", num: true });
    cols.push({ key: "arch", label: "Architecture" });
    cols.push({ key: "files", label: "" });
    return cols;
  }

  build() {
    const p = this.params;
    const set = (k, v, reset = true) => { p[k] = v; if (reset) p.offset = 0; this.load(); };
    this.search = h("input", { type: "search", id: "trial-search", placeholder: "Search architecture or #id",
      oninput: debounce(() => set("q", this.search.value.trim()), 300) });
    const state = h("select", { id: "trial-state", "aria-label": "State", onchange: () => set("state", state.value) },
      STATES.map((s) => h("option", { value: s }, s ? s[0].toUpperCase() + s.slice(1) : "Any state")));
    const front = h("input", { type: "checkbox", id: "trial-front", onchange: () => set("front", front.checked) });
    const metricNames = [...this.objectives.map((o) => o.metric), ...this.metricNames];
    const metric = h("select", { id: "trial-metric", "aria-label": "Metric filter", onchange: () => set("metric", metric.value ? `metrics.${metric.value}` : "") },
      h("option", { value: "" }, "Metric range…"), metricNames.map((m) => h("option", { value: m }, this.metrics.title(m))));
    const repeats = h("input", { type: "checkbox", id: "trial-hide-repeats", onchange: () => set("repeats", !repeats.checked) });
    this.csv = h("a", { class: "btn small", id: "trials-csv", download: "", title: "Every trial this filter selects, as CSV" },
      icon("download"), "CSV");
    this.brushNote = h("span", { class: "badge plain", id: "brush-note", style: { display: "none" } });
    const lo = h("input", { type: "number", id: "trial-min", placeholder: "min", step: "any",
      oninput: debounce(() => set("min", lo.value), 350) });
    const hi = h("input", { type: "number", id: "trial-max", placeholder: "max", step: "any",
      oninput: debounce(() => set("max", hi.value), 350) });
    this.count = h("span", { class: "sub grow" });
    this.body = h("div", { class: "table-wrap" }, h("div", { class: "empty" }, h("div", { class: "spinner" })));
    this.pager = h("div", { class: "pager" });
    return h("section", { class: "card", id: "trials-card" },
      h("div", { class: "card-head" }, h("h2", {}, "Trials"), this.count, this.csv),
      h("div", { class: "filters" }, this.search, state,
        h("label", { class: "check" }, front, "Pareto points only"),
        h("label", { class: "check" }, repeats, "Hide repeats"), metric, lo, hi, this.brushNote),
      this.body, this.pager);
  }

  /** The parallel coordinates' brushes (null: none): the server filters by them. */
  setWhere(where) {
    this.params.where = where;
    this.params.offset = 0;
    const n = where ? Object.keys(where.ranges).length + Object.keys(where.choices).length : 0;
    this.brushNote.style.display = n ? "" : "none";
    this.brushNote.textContent = `${n} brush${n === 1 ? "" : "es"} from the parallel coordinates`;
    this.load();
  }

  filterQuery() {
    const p = this.params;
    return { state: p.state, front: p.front || null, metric: p.metric, min: p.min, max: p.max, q: p.q,
      repeats: p.repeats ? null : "false", where: p.where ? JSON.stringify(p.where) : null };
  }

  refreshSoon() {
    // Live jobs: refresh the first page sorted by newest, at most every 3 s.
    if (this.params.offset !== 0 || this.pending) return;
    this.pending = setTimeout(() => { this.pending = null; this.load(true); }, 3000);
  }

  async load(quiet = false) {
    const p = this.params;
    const seq = ++this.seq;
    if (p.metric === "" && (p.min !== "" || p.max !== "")) return;
    const id = encodeURIComponent(this.jobId);
    this.csv.href = `/api/v1/dashboard/jobs/${id}/trials.csv${query({ ...this.filterQuery(), sort: p.sort, order: p.order })}`;
    if (p.where && Object.values(p.where.choices).some((v) => !v.length)) {
      this.render({ data: [], count: 0 }, quiet); // a brush between two choices selects nothing
      return;
    }
    try {
      const page = await api(`/dashboard/jobs/${id}/trials${query({
        offset: p.offset, limit: p.limit, sort: p.sort, order: p.order, ...this.filterQuery() })}`);
      if (seq !== this.seq) return; // a newer request won
      this.render(page, quiet);
    } catch (err) {
      if (seq !== this.seq) return;
      clear(this.body, h("div", { class: "empty" }, h("div", { class: "big" }, "Could not load trials"), err.message));
    }
  }

  unfiltered() {
    const p = this.params;
    return !p.state && !p.front && !p.metric && !p.q && p.repeats && !p.where;
  }

  render(page, quiet) {
    const p = this.params;
    const cols = this.columns();
    this.count.textContent = `${fmtInt(page.count)} trial${page.count === 1 ? "" : "s"}`;
    const before = quiet ? new Set([...this.body.querySelectorAll("tbody tr")].map((r) => r.dataset.trial)) : null;
    const head = h("tr", {}, cols.map((c) => h("th", {
      class: `${c.sort ? "sortable" : ""} ${c.num ? "num" : ""}`, dataset: { sort: c.sort || "" }, title: c.title || undefined,
      onclick: c.sort ? () => {
        if (p.sort === c.sort) p.order = p.order === "asc" ? "desc" : "asc";
        else { p.sort = c.sort; p.order = c.num || c.sort === "reward" ? "desc" : "asc"; }
        p.offset = 0; this.load();
      } : undefined,
    }, c.label, p.sort === c.sort ? h("span", { class: "arrow" }, p.order === "asc" ? "▲" : "▼") : null)));
    const cell = (t, c) => {
      if (c.key === "trial_id") return h("td", {}, h("b", {}, `#${t.t}`), t.f ? h("span", { class: "badge front", style: { marginLeft: "8px" } }, "Pareto") : null,
        t.c ? h("span", { class: "badge plain", style: { marginLeft: "6px" }, title: "Answered from the job's cache" }, "repeat") : null);
      if (c.key === "state") return h("td", {}, badge(t.s));
      if (c.key === "reward") return h("td", { class: "num" }, fmt(t.r));
      if (c.key === "duration_s") return h("td", { class: "num muted" }, fmtDuration(t.d));
      if (c.key === "arch") return h("td", { class: "arch mono", title: t.err || t.k }, t.err ? h("span", { style: { color: "var(--red)" } }, t.err) : t.k);
      if (c.key === "files") {
        const files = Object.entries(t.a || {});
        return h("td", {}, files.map(([name, path]) => h("a", { class: "btn small ghost", href: artifactUrl(this.jobId, path),
          download: path.split("/").pop(), title: `Download ${name}`, onclick: (e) => e.stopPropagation() }, icon("download"), name)));
      }
      return h("td", { class: "num" }, fmt(t.m?.[c.key.slice(8)]));
    };
    const rows = page.data.map((t) => h("tr", {
      class: `click${before && !before.has(String(t.t)) ? " new" : ""}`, dataset: { trial: String(t.t), state: t.s },
      onclick: () => this.onOpen(t.t),
    }, cols.map((c) => cell(t, c))));
    clear(this.body, page.data.length
      ? h("table", { class: "data", id: "trials-table" }, h("thead", {}, head), h("tbody", {}, rows))
      : this.unfiltered() ? h("div", { class: "empty", id: "trials-empty" }, h("div", { class: "big" }, "Waiting for the first trial"),
        "Each architecture the search evaluates appears here, newest first.")
        : h("div", { class: "empty", id: "trials-empty" }, h("div", { class: "big" }, "No trials match"), "Change the filters or the brushes."));
    const last = Math.min(p.offset + p.limit, page.count);
    const size = h("select", { "aria-label": "Rows per page", onchange: () => { p.limit = Number(size.value); p.offset = 0; this.load(); } },
      [25, 50, 100].map((n) => h("option", { value: n, selected: n === p.limit }, `${n} / page`)));
    clear(this.pager, size,
      h("span", { id: "trials-range" }, page.count ? `${fmtInt(p.offset + 1)}–${fmtInt(last)} of ${fmtInt(page.count)}` : ""),
      h("button", { class: "btn small", id: "trials-prev", disabled: p.offset === 0,
        onclick: () => { p.offset = Math.max(0, p.offset - p.limit); this.load(); } }, "Previous"),
      h("button", { class: "btn small", id: "trials-next", disabled: last >= page.count,
        onclick: () => { p.offset += p.limit; this.load(); } }, "Next"));
  }
}
