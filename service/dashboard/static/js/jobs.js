// The jobs page: your jobs with status, progress and best result, and the submit form.
import { api, query } from "./api.js";
import { JobForm } from "./jobform.js";
import { badge, clear, fmt, fmtInt, h, icon, progressBar, relTime } from "./util.js";

const STATUSES = ["all", "running", "queued", "succeeded", "failed", "cancelled", "exhausted"];
const PAGE = 25;
const POLL_MS = 2500;

export class JobsView {
  constructor(root, user, { compare = false } = {}) {
    this.root = root;
    this.user = user;
    this.compareMode = compare; // #/compare without jobs: pick them here
    this.picked = new Set();
    this.status = "all";
    this.offset = 0;
    this.known = null;
    this.form = null;
    this.timer = null;
    this.alive = true;
  }

  start() {
    this.countEl = h("span", { class: "muted" });
    this.formSlot = h("div");
    this.tabs = h("div", { class: "tabs", role: "tablist" }, STATUSES.map((s) => h("button", {
      class: s === this.status ? "active" : "", dataset: { status: s },
      onclick: () => { this.status = s; this.offset = 0; this.syncTabs(); this.load(); },
    }, s === "all" ? "All" : s[0].toUpperCase() + s.slice(1))));
    this.body = h("div", { class: "table-wrap" }, h("div", { class: "center-spinner", style: { minHeight: "200px" } },
      h("div", { class: "spinner" })));
    this.pager = h("div", { class: "pager" });
    this.compareBtn = h("a", { class: "btn", id: "compare-jobs", href: "#/compare", "aria-disabled": "true",
      title: "Tick two or more jobs to draw their Pareto fronts on one chart" }, "Compare fronts");
    clear(this.root,
      h("div", { class: "page-head" },
        h("div", {}, h("h1", {}, this.compareMode ? "Compare jobs" : "Jobs"), this.countEl,
          this.compareMode ? h("div", { class: "muted" }, "Tick two or more jobs, then “Compare fronts”.") : null),
        h("div", { class: "row" }, this.compareBtn,
          h("button", { class: "btn primary", id: "new-job", onclick: () => this.toggleForm() }, icon("plus"), "New job"))),
      this.formSlot,
      h("section", { class: "card" }, h("div", { class: "card-head" }, this.tabs), this.body, this.pager));
    this.load();
  }

  destroy() {
    this.alive = false;
    clearTimeout(this.timer);
  }

  pick(id, on) {
    if (on) this.picked.add(id); else this.picked.delete(id);
    const ids = [...this.picked];
    this.compareBtn.href = `#/compare/${ids.join(",")}`;
    this.compareBtn.setAttribute("aria-disabled", String(ids.length < 2));
    this.compareBtn.classList.toggle("primary", ids.length >= 2);
  }

  syncTabs() {
    for (const b of this.tabs.children) b.classList.toggle("active", b.dataset.status === this.status);
  }

  toggleForm(open = !this.form) {
    if (!open) { this.form = null; clear(this.formSlot); return; }
    this.form = new JobForm({
      onCreated: (job) => { this.toggleForm(false); this.status = "all"; this.offset = 0; this.syncTabs(); this.load(job.id); },
      onClose: () => this.toggleForm(false),
    });
    clear(this.formSlot, this.form.el);
    this.form.textarea.focus({ preventScroll: true });
    this.form.textarea.setSelectionRange(0, 0);
  }

  async load(highlight = null) {
    clearTimeout(this.timer);
    if (!this.alive) return;
    try {
      const page = await api(`/jobs${query({ offset: this.offset, limit: PAGE, status: this.status === "all" ? null : this.status })}`);
      if (!this.alive) return;
      this.render(page, highlight);
      const active = page.data.some((j) => j.status === "running" || j.status === "queued");
      this.timer = setTimeout(() => this.load(), active ? POLL_MS : POLL_MS * 4);
    } catch (err) {
      if (!this.alive) return;
      clear(this.body, h("div", { class: "empty" }, h("div", { class: "big" }, "Could not load jobs"), err.message));
      this.timer = setTimeout(() => this.load(), POLL_MS * 2);
    }
  }

  render(page, highlight) {
    this.countEl.textContent = `${fmtInt(page.count)} job${page.count === 1 ? "" : "s"}`;
    if (!page.data.length) {
      clear(this.body, h("div", { class: "empty" },
        h("div", { class: "big" }, this.status === "all" ? "No jobs yet" : `No ${this.status} jobs`),
        this.status === "all" ? "Submit a job spec to start a search." : ""));
    } else {
      const rows = page.data.map((j) => h("tr", {
        class: `click${j.id === highlight ? " new" : ""}`, dataset: { jobId: j.id, status: j.status },
        onclick: (e) => { if (!e.target.closest("a")) location.hash = `#/jobs/${j.id}`; },
      },
      h("td", { class: "pick" }, h("input", { type: "checkbox", "aria-label": `Compare ${j.name}`, checked: this.picked.has(j.id),
        onclick: (e) => { e.stopPropagation(); this.pick(j.id, e.target.checked); } })),
      h("td", { class: "name" }, h("a", { href: `#/jobs/${j.id}` }, j.name),
        h("div", { class: "faint mono", style: { fontSize: "11.5px" } }, j.id.slice(0, 12))),
      h("td", { title: j.reason || "" }, badge(j.status),
        j.reason && j.status !== "running" ? h("div", { class: "faint reason" }, j.reason) : null),
      h("td", { style: { minWidth: "220px" } }, h("div", { class: "progress-cell" },
        progressBar(j.progress.fraction, j.status),
        h("span", {}, `${fmtInt(j.progress.evaluations)} / ${fmtInt(j.progress.budget)}`))),
      h("td", { class: "num" }, fmt(j.best_reward)),
      // The ratio to the true front where the tables give one: raw volumes of different jobs
      // (different units and reference points) do not compare.
      h("td", { class: "num", title: j.hypervolume_reference ? `hypervolume ${fmt(j.hypervolume)} from (${j.hypervolume_reference.point.join(", ")})` : "" },
        j.hypervolume_normalized !== null && j.hypervolume_normalized !== undefined ? `${fmt(j.hypervolume_normalized, 3)} of true`
          : j.hypervolume !== null && j.hypervolume !== undefined && j.hypervolume_reference
            ? [fmt(j.hypervolume), h("div", { class: "faint reason hv-ref" }, `raw, ref (${j.hypervolume_reference.point.map((v) => fmt(v)).join(", ")})`)]
            : fmt(j.hypervolume)),
      h("td", { class: "num" }, fmtInt(j.progress.trials),
        j.progress.failed ? h("span", { class: "faint" }, ` · ${fmtInt(j.progress.failed)} failed`) : null),
      h("td", { class: "muted", title: j.created_at }, relTime(j.created_at))));
      clear(this.body, h("table", { class: "data", id: "jobs-table" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Name"), h("th", {}, "Status"), h("th", {}, "Progress"),
          h("th", { class: "num" }, "Best reward"), h("th", { class: "num" }, "Hypervolume"),
          h("th", { class: "num" }, "Trials"), h("th", {}, "Created"))),
        h("tbody", {}, rows)));
    }
    const last = Math.min(this.offset + PAGE, page.count);
    clear(this.pager, page.count > PAGE ? [
      h("span", {}, `${fmtInt(this.offset + 1)}–${fmtInt(last)} of ${fmtInt(page.count)}`),
      h("button", { class: "btn small", disabled: this.offset === 0,
        onclick: () => { this.offset = Math.max(0, this.offset - PAGE); this.load(); } }, "Previous"),
      h("button", { class: "btn small", disabled: last >= page.count,
        onclick: () => { this.offset += PAGE; this.load(); } }, "Next"),
    ] : []);
  }
}
