// The job page: header and progress, why the job stopped, the live Pareto view, hypervolume and
// best reward, the best trial (with its per-layer policy for compression jobs), files, the
// analysis views and the trials table.
import { AnalysisCard } from "./analysis.js";
import { api, prefetched, query, sessionReady } from "./api.js";
import { paretoFigure, policyFigure, stepFigure } from "./charts.js";
import { Live } from "./live.js";
import { Metrics } from "./metrics.js";
import { ParetoModel } from "./pareto.js";
import { barPanels, Chart } from "./plot.js";
import { policyGroups, TrialDrawer } from "./trial.js";
import { TrialsTable } from "./trials.js";
import { badge, clear, downloadLink, elapsed, fmt, fmtDuration, fmtInt, h, icon, progressBar, toast } from "./util.js";

const MAX_POINTS = 2000; // scatter points per snapshot (Pareto points always included)
// Live equals reload: once the stream pushes the plot past the snapshot's budget, the page
// asks the server for a fresh snapshot, down-sampled by the same rule a reload uses.
const RESAMPLE_MS = 1000; // at most one fresh snapshot per this interval while streaming
const LIVE_SLACK = 500; // stream points drawn past the budget while the next snapshot loads
const REPEATS_WARN = 0.5; // warn when more than this share of trials were repeats
const REDRAW_MS = 250;
const SERIES_MS = 1000;
const CONFIRM_MS = 8000;
const NOTE_MAX = 10_000; // characters of a job's note (service/schemas.py NOTE_MAX_CHARS)
const afterPaint = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
export const FINISHED = new Set(["succeeded", "failed", "cancelled", "exhausted"]);

export class JobView {
  constructor(root, id, user) {
    this.root = root;
    this.id = id;
    this.user = user;
    this.alive = true;
    this.dirty = new Set();
    this.lastDraw = 0;
    this.timer = null;
    this.pendingTrials = null; // stream trials buffered while a snapshot loads
    this.drawnLive = new Set();
    this.newLive = [];
    this.drawer = null;
    this.bestLoaded = null;
  }

  async start() {
    clear(this.root, h("div", { class: "center-spinner" }, h("div", { class: "spinner" })));
    let job, ov;
    try {
      const id = encodeURIComponent(this.id);
      [job, ov] = await Promise.all([prefetched("job", this.id, `/jobs/${id}`),
        prefetched("overview", this.id, `/dashboard/jobs/${id}/overview${query({ max_points: MAX_POINTS })}`)]);
    } catch (err) {
      if (!this.alive) return;
      clear(this.root, h("div", { class: "empty", id: "job-missing" },
        h("div", { class: "big" }, err.status === 404 ? "Job not found" : "Could not load the job"),
        err.status === 404 ? "It does not exist, or it belongs to another user." : err.message,
        h("div", { style: { marginTop: "14px" } }, h("a", { class: "btn", href: "#/jobs" }, "Back to jobs"))));
      return;
    }
    if (!this.alive) return;
    performance.mark("data-ready");
    this.job = job;
    this.metrics = new Metrics(job);
    this.state = flatState(job);
    this.objectives = ov.objectives;
    // Axis titles with what the metric is and its unit ("Latency on Pixel 3 (ms)").
    this.axes = ov.axes.map((a) => ({ ...a, name: a.label, label: this.metrics.title(a.key) }));
    this.model = new ParetoModel(this.axes, ov.objectives);
    this.model.loadSnapshot(ov.scatter);
    this.hv = ov.series.hv;
    this.best = ov.series.best;
    this.lastEval = ov.series.last;
    this.layout();
    this.renderHeader();
    this.renderBest(job.best);
    this.loadFiles();
    this.schedule("pareto", "series");
    const metricNames = ov.axes.filter((a) => a.group === "metrics").map((a) => a.label);
    this.table = new TrialsTable(this.id, { objectives: this.objectives, metricNames, metrics: this.metrics,
      onOpen: (t) => this.openTrial(t) });
    this.tableSlot.replaceWith(this.table.el);
    this.table.load();
    this.analysis = new AnalysisCard(this.id, { metrics: this.metrics, objectives: this.objectives,
      onBrush: (where) => this.table.setWhere(where) });
    this.analysis.metricNames = metricNames;
    this.analysisSlot.replaceWith(this.analysis.el);
    this.analysis.start();
    this.live = new Live(this.id, ov.cursor, {
      update: (d) => this.onUpdate(d), end: (d) => this.onEnd(d), status: (s) => this.setLive(s),
    });
    if (FINISHED.has(job.status)) this.setLive("ended");
    this.live.start();
  }

  destroy() {
    this.alive = false;
    clearTimeout(this.resampleTimer);
    this.live?.stop();
    clearTimeout(this.timer);
    clearTimeout(this.seriesTimer);
    clearTimeout(this.bestTimer);
    clearTimeout(this.confirmTimer);
    this.drawer?.close();
    for (const c of [this.paretoChart, this.hvChart, this.bestChart]) c?.destroy();
  }

  // ---- layout ------------------------------------------------------------------------------
  layout() {
    const pick = (id, label, value, allowNone) => {
      const sel = h("select", { id, "aria-label": label, onchange: () => this.changeAxes() },
        allowNone ? h("option", { value: "none", selected: !value }, "none") : null,
        groupOptions(this.axes, value));
      return h("label", { class: "field" }, label, sel);
    };
    this.head = h("div", { class: "page-head" });
    this.banner = h("div");
    this.stats = h("div", { class: "stats", id: "job-stats" });
    this.paretoEl = h("div", { class: "plot", id: "pareto-plot" }, h("div", { class: "plot-overlay" }, h("div", { class: "spinner" })));
    this.paretoNote = h("span", { class: "plot-note", id: "pareto-note" });
    this.pickers = h("div", { class: "axis-pickers" },
      pick("axis-x", "X axis", this.model.selection.x), pick("axis-y", "Y axis", this.model.selection.y),
      pick("axis-color", "Colour", this.model.selection.color, true));
    this.hvEl = h("div", { class: "plot short", id: "hv-plot" });
    this.bestEl = h("div", { class: "plot short", id: "best-plot" });
    this.bestCard = h("div", { class: "card-body", id: "best-trial" });
    this.files = h("div", { class: "card-body", id: "downloads" }, h("div", { class: "spinner small" }));
    this.policyCard = h("section", { class: "card", id: "policy-card", style: { display: "none" } },
      h("div", { class: "card-head" }, h("h2", {}, "Per-layer policy of the best trial"), h("span", { class: "sub grow", id: "policy-note" })),
      h("div", { class: "card-body" }, this.policyEl = h("div", { class: "plot", id: "policy-plot" })));
    this.tableSlot = h("div");
    this.analysisSlot = h("div");
    this.noteCard = h("section", { class: "card note-card", id: "note-card", hidden: true });
    const hasFront = this.objectives.length > 1;
    clear(this.root,
      this.head, this.banner, this.stats, this.noteCard,
      h("div", { class: "grid main", style: { marginBottom: "18px" } },
        h("section", { class: "card" },
          h("div", { class: "card-head" }, h("h2", {}, hasFront ? "Pareto front" : "Trials"), h("span", { class: "grow" }), this.paretoNote),
          h("div", { class: "card-body" }, this.pickers, this.paretoEl)),
        h("div", { class: "stack" },
          h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Best trial")), this.bestCard),
          h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Files")), this.files))),
      h("div", { class: "grid two", style: { marginBottom: "18px" } },
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Hypervolume"), h("span", { class: "sub grow", id: "hv-note" })),
          h("div", { class: "card-body" }, this.hvEl)),
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Best reward"), h("span", { class: "sub grow" })),
          h("div", { class: "card-body" }, this.bestEl))),
      h("div", { style: { marginBottom: "18px" } }, this.policyCard),
      h("div", { style: { marginBottom: "18px" } }, this.analysisSlot),
      this.tableSlot);
    this.renderNote();
    this.paretoChart = new Chart(this.paretoEl, { download: `pareto-${this.id.slice(0, 12)}`,
      onClick: (p) => this.openTrial(p.t) });
    this.hvChart = new Chart(this.hvEl, { legend: false });
    this.bestChart = new Chart(this.bestEl, { legend: false });
  }

  /** Built once, then updated in place: a button that is re-created while the stream
   * updates the header would swallow clicks. */
  buildHeader() {
    this.liveEl = h("span", { class: "live", id: "live" }, h("span", { class: "dot" }), h("span", {}, "Connecting…"));
    this.badgeSlot = h("span");
    this.meta = h("div", { class: "muted", style: { marginTop: "4px" } });
    this.cancelBtn = h("button", { class: "btn danger", id: "cancel-job", onclick: (e) => this.cancel(e) });
    clear(this.head,
      h("div", {},
        h("div", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", h("span", { class: "mono" }, this.id.slice(0, 12))),
        h("div", { class: "row" }, h("h1", { id: "job-name" }, this.job.name), this.badgeSlot, this.liveEl),
        this.meta),
      h("div", { class: "row" }, h("a", { class: "btn", href: `#/compare/${this.id}`, id: "compare-job",
        title: "Draw this job's front beside others" }, "Compare"), this.cancelBtn));
    this.statEls = {
      progress: h("div", { class: "value", id: "stat-progress" }),
      bar: progressBar(0),
      best: stat("Best reward", "stat-best", this.metrics.formula ? `reward = ${this.metrics.formula}` : null),
      hv: stat("Hypervolume", "stat-hv"),
      front: stat("Pareto points", "stat-front"),
      trials: stat("Trials", "stat-trials"),
    };
    clear(this.stats,
      h("div", { class: "stat wide" }, h("div", { class: "label" }, "Progress"), this.statEls.progress,
        h("div", { style: { marginTop: "8px" } }, this.statEls.bar)),
      this.statEls.best.el, this.statEls.hv.el, this.statEls.front.el, this.statEls.trials.el);
  }

  renderHeader() {
    if (!this.cancelBtn) this.buildHeader();
    const s = this.state;
    const running = s.status === "running" || s.status === "queued";
    if (this.badgeSlot.dataset.status !== s.status) {
      clear(this.badgeSlot, badge(s.status));
      this.badgeSlot.dataset.status = s.status;
    }
    const took = elapsed(s);
    this.meta.textContent = `${this.job.spec.agent?.name || "?"} on ${this.job.spec.space?.name || "?"} · `
      + this.objectives.map((o) => `${this.metrics.title(o.metric)} ${o.direction === "max" ? "↑" : "↓"}`).join(", ")
      + (took !== null ? ` · ${fmtDuration(took)}` : "");
    const b = this.cancelBtn;
    b.style.display = running ? "" : "none";
    b.disabled = !!s.cancel_requested;
    b.classList.toggle("confirm", !!this.confirming && !s.cancel_requested);
    const label = s.cancel_requested ? "Cancelling…" : this.confirming ? "Confirm cancel" : "Cancel job";
    if (b.dataset.label !== label) {
      clear(b, icon("stop"), label);
      b.dataset.label = label;
    }
    if (!running && b.parentNode) b.remove();
    const frac = s.budget ? Math.min(1, s.evaluations / s.budget) : 0;
    clear(this.statEls.progress, `${fmtInt(s.evaluations)} `,
      h("span", { class: "faint", style: { fontSize: "15px" } }, `/ ${fmtInt(s.budget)} evaluations`));
    this.statEls.bar.className = `progress ${s.status}`;
    this.statEls.bar.firstChild.style.width = `${frac * 100}%`;
    this.statEls.best.set(fmt(s.best_reward, 6),
      s.best_trial_id !== null && s.best_trial_id !== undefined ? `trial #${s.best_trial_id}` : "");
    this.statEls.hv.set(fmt(s.hypervolume, 6), s.hv_true_front && s.hypervolume !== null && s.hypervolume !== undefined
      ? `${fmt(s.hypervolume / s.hv_true_front, 4)} of the true front`
      : s.hv_reference ? `reference (${s.hv_reference.map((v) => fmt(v, 4)).join(", ")})` : "");
    this.statEls.front.set(fmtInt(this.model.front.size), "");
    // "Failed" alone hid invalid trials: every trial that did not complete is counted.
    const other = Math.max(0, s.trials - s.complete - s.failed - s.cached);
    this.statEls.trials.set(fmtInt(s.trials), `${fmtInt(s.failed)} failed · ${fmtInt(other)} invalid · ${fmtInt(s.cached)} repeats`);
    this.renderBanners();
  }

  /** Why the job stopped (every finished job says so) and whether repeats dominate. */
  renderBanners() {
    const s = this.state;
    const finished = FINISHED.has(s.status);
    const reason = finished ? stopReason(s) : "";
    const share = s.trials ? s.cached / s.trials : 0;
    const repeats = s.trials >= 10 && share > REPEATS_WARN;
    const key = `${s.status}|${reason}|${repeats ? Math.round(share * 100) : ""}`;
    if (this.banner.dataset.key === key) return;
    this.banner.dataset.key = key;
    const kind = { failed: "error", cancelled: "warn", exhausted: "warn", succeeded: "info" }[s.status] || "info";
    clear(this.banner,
      reason ? h("div", { class: `banner ${kind}`, id: "job-reason", dataset: { status: s.status } },
        h("b", {}, `${statusWord(s.status)}: `), s.status === "failed" ? h("pre", {}, reason) : h("span", {}, reason)) : null,
      repeats ? h("div", { class: "banner warn", id: "repeats-warning" },
        h("span", {}, h("b", {}, `${Math.round(share * 100)}% of trials were repeats`),
          ` (${fmtInt(s.cached)} of ${fmtInt(s.trials)}): the agent keeps proposing architectures it has already seen, `
          + "which the job answers from its cache without spending budget. Tick “Hide repeats” in the trials table to see only new ones.")) : null);
  }

  setLive(status) {
    if (!this.liveEl) return;
    const ended = FINISHED.has(this.state?.status);
    const [cls, text] = status === "live" ? (ended ? ["", "Finished"] : ["on", "Live"])
      : status === "ended" ? ["", "Finished"] : ["warn", "Reconnecting…"];
    this.liveEl.className = `live ${cls}`;
    this.liveEl.lastChild.textContent = text;
    this.liveEl.dataset.state = status;
  }

  // ---- live updates ------------------------------------------------------------------------
  onUpdate(d) {
    if (!this.alive) return;
    if (d.trials?.length) {
      if (this.pendingTrials) this.pendingTrials.push(...d.trials);
      const added = this.model.addTrials(d.trials, MAX_POINTS + LIVE_SLACK);
      this.newLive.push(...added);
      let top = this.best.length ? this.best[this.best.length - 1][1] : -Infinity;
      for (const t of d.trials) {
        // t.n: the trial counts (complete, first evaluation, constraints met: search/trials.py)
        if (t.n && typeof t.r === "number" && Number.isFinite(t.r) && t.r > top) { top = t.r; this.best.push([t.e, t.r]); }
        if (typeof t.e === "number" && (this.lastEval === null || this.lastEval === undefined || t.e > this.lastEval)) this.lastEval = t.e;
      }
      this.best.sort((a, b) => a[0] - b[0]);
      this.table?.refreshSoon();
      this.schedule("pareto", "series");
      if (this.model.points.size > MAX_POINTS || this.model.held) this.resampleSoon();
    }
    if (d.front) { this.model.setFront(d.front); this.schedule("pareto", "header"); }
    if (d.hv) {
      if (d.hv.reset) this.hv = d.hv.points;
      else {
        const seen = new Map(this.hv.map((p) => [p[0], p]));
        for (const p of d.hv.points) seen.set(p[0], p);
        this.hv = [...seen.values()].sort((a, b) => a[0] - b[0]);
      }
      this.schedule("series");
    }
    if (d.job) {
      const bestChanged = d.job.best_trial_id !== this.state.best_trial_id;
      const ended = FINISHED.has(d.job.status) && !FINISHED.has(this.state.status);
      this.state = { ...this.state, ...d.job };
      this.model.setBest(d.job.best_trial_id);
      this.schedule("header", "pareto");
      if (bestChanged) this.loadBestSoon();
      if (ended) this.loadFiles();
    }
  }

  onEnd(d) {
    this.state = { ...this.state, ...d };
    this.schedule("header");
    this.loadFiles();
    this.loadBestSoon();
    this.table?.load(true);
    this.analysis?.refresh();
    // The last snapshot: what a reload would draw.
    if (this.model.live || this.model.held) this.resample(null, true);
  }

  /** Over the budget while streaming: a fresh server snapshot (throttled). */
  resampleSoon() {
    if (this.resampleTimer) return;
    const wait = Math.max(0, RESAMPLE_MS - (performance.now() - (this.resampledAt || -Infinity)));
    this.resampleTimer = setTimeout(() => { this.resampleTimer = null; this.resample(); }, wait);
  }

  schedule(...what) {
    for (const w of what) this.dirty.add(w);
    if (this.timer || !this.dirty.size) return;
    const wait = Math.max(0, REDRAW_MS - (performance.now() - this.lastDraw));
    this.timer = setTimeout(() => requestAnimationFrame(() => this.flush()), wait);
  }

  async flush() {
    this.timer = null;
    if (!this.alive) return;
    this.lastDraw = performance.now();
    const dirty = this.dirty;
    this.dirty = new Set();
    if (dirty.has("header")) this.renderHeader();
    if (dirty.has("pareto")) {
      this.drawPareto();
      await afterPaint(); // the Pareto plot reaches the screen before the smaller charts
    }
    if (dirty.has("series") && this.alive) {
      // The step charts change little per trial: redraw them at most once a second.
      const wait = SERIES_MS - (performance.now() - (this.seriesDrawn || 0));
      if (wait > 0) {
        this.dirty.add("series");
        clearTimeout(this.seriesTimer);
        this.seriesTimer = setTimeout(() => this.schedule(), wait);
      } else {
        this.seriesDrawn = performance.now();
        this.drawSeries();
      }
    }
  }

  drawPareto() {
    const fig = paretoFigure(this.model);
    fig.spec.empty = FINISHED.has(this.state.status) ? "No completed trial to draw"
      : this.state.status === "queued" ? "Waiting for a worker to start the job" : "Waiting for the first trial";
    const fresh = this.newLive;
    this.newLive = [];
    const painted = this.paretoChart.draw(fig.spec);
    this.paretoEl.querySelector(".plot-overlay")?.remove();
    Object.assign(this.paretoEl.dataset, { points: String(fig.counts.points), front: String(fig.counts.front),
      total: String(this.model.total), x: this.model.selection.x, y: this.model.selection.y });
    const m = this.model;
    this.paretoNote.textContent = m.total > fig.counts.points
      ? `${fmtInt(fig.counts.points)} of ${fmtInt(m.total)} points drawn · all ${fmtInt(m.front.size)} Pareto points kept`
      : `${fmtInt(fig.counts.points)} points · ${fmtInt(fig.counts.front)} on the front`;
    this.statEls?.front.set(fmtInt(m.front.size), "");
    // After the next paint: the moment a point is on screen (the benchmark reads these).
    // Only a draw that painted points counts as the plot being drawn.
    afterPaint().then(() => {
      const now = Date.now();
      const ls = window.__ls;
      if ((ls.drawnCount || 0) > 5000) { ls.drawnAt = {}; ls.drawnCount = 0; } // bounded
      for (const t of fresh) {
        if (!(t in ls.drawnAt)) { ls.drawnAt[t] = now; ls.drawnCount = (ls.drawnCount || 0) + 1; }
      }
      if (!window.__ls.paretoDrawnAt && painted > 0) {
        window.__ls.paretoDrawnAt = performance.now();
        performance.mark("pareto-drawn");
      }
      this.paretoEl.dataset.drawn = String(Number(this.paretoEl.dataset.drawn || 0) + 1);
    });
  }

  drawSeries() {
    const waiting = FINISHED.has(this.state.status) ? "No completed trial" : "Waiting for the first completed trial";
    const hv = stepFigure(this.hv, this.lastEval, { name: "hypervolume", color: "#4f46e5", ytitle: "hypervolume",
      empty: this.objectives.length > 1 ? waiting : "One objective: no hypervolume" });
    const best = stepFigure(this.best, this.lastEval, { name: "best reward", color: "#059669",
      ytitle: this.metrics.formula ? `best reward = ${this.metrics.formula}` : "best reward", empty: waiting });
    this.hvChart.draw(hv.spec);
    this.bestChart.draw(best.spec);
    this.hvEl.dataset.points = String(this.hv.length);
    this.hvEl.dataset.last = String(this.hv.length ? this.hv[this.hv.length - 1][1] : "");
    this.bestEl.dataset.points = String(this.best.length);
    const note = document.getElementById("hv-note");
    if (note) note.textContent = this.objectives.length > 1 ? `${this.objectives.length} objectives` : "one objective: the best value";
  }

  async changeAxes() {
    const x = this.pickers.querySelector("#axis-x").value;
    const y = this.pickers.querySelector("#axis-y").value;
    const color = this.pickers.querySelector("#axis-color").value;
    await this.resample({ x, y, color });
  }

  async resample(sel = null, force = false) {
    if (this.resampling) {
      if (force) this.resampleAgain = true; // the last one must see the finished job
      return;
    }
    this.resampling = true;
    this.resampledAt = performance.now();
    this.pendingTrials = [];
    const s = sel || this.model.selection;
    try {
      const snap = await api(`/dashboard/jobs/${encodeURIComponent(this.id)}/scatter${query({
        x: s.x, y: s.y, color: s.color || "none", max_points: MAX_POINTS })}`);
      if (!this.alive) return;
      this.model.loadSnapshot(snap);
      this.model.addTrials(this.pendingTrials, MAX_POINTS + LIVE_SLACK);
      this.schedule("pareto");
    } catch (err) {
      toast(err.message, "error");
    } finally {
      this.pendingTrials = null;
      this.resampling = false;
      if (this.resampleAgain && this.alive) { this.resampleAgain = false; this.resample(null, true); }
    }
  }

  // ---- the owner's note ----------------------------------------------------------------------
  /** The job's note: the owner reads and edits it (PATCH /jobs/{id}); others who may see the
   * job (admins) read it; no card when there is nothing to read or write. */
  async renderNote(editing = false) {
    const me = this.user || await sessionReady().catch(() => null);
    if (!this.alive) return;
    const mine = !!me && me.name === this.job.owner;
    const note = this.job.note || "";
    this.noteCard.hidden = !mine && !note;
    if (this.noteCard.hidden) return;
    if (!editing) {
      clear(this.noteCard, // without a note, one line: the card's head
        h("div", { class: `card-head${note ? "" : " bare"}` }, h("h2", {}, "Note"),
          note ? h("span", { class: "grow" }) : h("span", { class: "sub grow", id: "job-note-empty" },
            "none yet: what this job is for, what to compare it with"),
          mine ? h("button", { class: "btn small", id: "edit-note", onclick: () => this.renderNote(true) },
            note ? "Edit note" : "Add a note") : null),
        note ? h("div", { class: "card-body" }, h("div", { class: "note-text", id: "job-note" }, note)) : null);
      return;
    }
    const counter = h("span", { class: "faint note-count", id: "note-count" });
    const error = h("div", { class: "form-error", id: "note-error" });
    const save = h("button", { class: "btn primary small", id: "save-note", type: "button" }, "Save note");
    const input = h("textarea", { id: "job-note-input", class: "note-input", rows: 4, "aria-label": "Note",
      placeholder: "What this job is for, what you changed, what to compare it with…" });
    input.value = note;
    const count = () => {
      counter.textContent = `${fmtInt(input.value.length)} / ${fmtInt(NOTE_MAX)}`;
      counter.classList.toggle("over", input.value.length > NOTE_MAX);
    };
    const submit = async () => {
      save.disabled = true;
      error.textContent = "";
      try {
        const job = await api(`/jobs/${encodeURIComponent(this.id)}`, { method: "PATCH", body: { note: input.value } });
        this.job = { ...this.job, note: job.note };
        toast(job.note ? "Note saved" : "Note cleared");
        this.renderNote(false);
      } catch (err) {
        const e = err.errors?.[0];
        error.textContent = e ? `${e.field ? `${e.field}: ` : ""}${e.message}` : err.message;
      } finally {
        save.disabled = false;
      }
    };
    save.onclick = submit;
    input.oninput = count;
    input.onkeydown = (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
      if (e.key === "Escape") { e.preventDefault(); this.renderNote(false); }
    };
    count();
    clear(this.noteCard,
      h("div", { class: "card-head" }, h("h2", {}, "Note"), h("span", { class: "grow" }), counter),
      h("div", { class: "card-body" }, input, error,
        h("div", { class: "row", style: { justifyContent: "flex-end", marginTop: "10px" } },
          h("span", { class: "muted", style: { marginRight: "auto", fontSize: "12px" } }, "Ctrl+Enter saves"),
          h("button", { class: "btn small", id: "cancel-note", type: "button", onclick: () => this.renderNote(false) }, "Cancel"),
          save)));
    input.focus({ preventScroll: true });
  }

  // ---- best trial, files, policy -----------------------------------------------------------
  loadBestSoon() {
    clearTimeout(this.bestTimer);
    clearTimeout(this.confirmTimer);
    this.bestTimer = setTimeout(async () => {
      const id = this.state.best_trial_id;
      if (id === null || id === undefined || id === this.bestLoaded) return;
      try {
        this.renderBest(await api(`/dashboard/jobs/${encodeURIComponent(this.id)}/trials/${id}`));
      } catch { /* the next update retries */ }
    }, 600);
  }

  renderBest(t) {
    if (!t) {
      clear(this.bestCard, h("div", { class: "muted" }, "No completed trial yet."));
      return;
    }
    this.bestLoaded = t.trial_id;
    this.bestTrial = t;
    this.bestFiles = h("div", { class: "downloads", id: "best-downloads", style: { marginTop: "12px" } });
    const m = this.metrics;
    clear(this.bestCard,
      h("div", { class: "row", style: { marginBottom: "10px" } },
        h("div", { style: { fontSize: "20px", fontWeight: 650 } }, fmt(t.reward, 6)),
        h("span", { class: "muted" }, "reward"), h("span", { style: { flex: 1 } }),
        h("a", { class: "btn small", href: `#/jobs/${this.id}/trials/${t.trial_id}`, id: "open-best" }, `Trial #${t.trial_id}`)),
      m.formula ? h("div", { class: "formula", id: "best-formula" }, "reward = ", h("code", {}, m.formula)) : null,
      h("dl", { class: "kv" }, Object.entries(t.metrics || {}).flatMap(([k, v]) => [
        h("dt", { title: k }, m.label(k)), h("dd", {}, m.withUnit(k, fmt(v, 6)))])),
      h("div", { class: "mono faint", style: { marginTop: "10px", overflowWrap: "anywhere", fontSize: "11.5px" } }, t.arch_key),
      this.bestFiles);
    this.renderBestFiles();
    this.drawPolicy(t);
    this.renderFiles();
  }

  /** The best trial's files, updated in place (a link already shown stays the same element
   * when the job's file list arrives with sizes and exported models). */
  renderBestFiles() {
    if (!this.bestFiles || !this.bestTrial) return;
    const files = this.filesOf(this.bestTrial);
    const shown = new Map([...this.bestFiles.children].map((el) => [el.dataset.file, el]));
    const items = files.map((f) => {
      const fresh = downloadLink(this.id, f.path, f.path, f.size, f.what);
      const old = shown.get(f.path);
      if (!old) return fresh;
      old.querySelector(".what").replaceWith(fresh.querySelector(".what"));
      return old;
    });
    this.bestFiles.replaceChildren(...items); // moves kept nodes, never detaches them for long
    this.bestFiles.hidden = !items.length;
  }

  drawPolicy(t) {
    const groups = policyGroups(t.arch);
    if (!groups) {
      this.policyCard.style.display = "none";
      return;
    }
    this.policyCard.style.display = "";
    document.getElementById("policy-note").textContent = `trial #${t.trial_id} · ${Object.keys(groups).join(", ")}`;
    const spec = this.job.spec || {};
    const target = spec.target || spec.space?.options?.target || null; // top level, or the space's own option
    const panels = [...policyFigure(groups), ...referencePanels(t.recorded?.policy, target)];
    this.policyEl.style.height = `${Math.max(260, 170 * panels.length + 60)}px`;
    barPanels(this.policyEl, panels, { valueText: (v) => fmt(v, 4) });
    this.policyEl.dataset.trial = String(t.trial_id);
  }

  /** A trial's files as the trial drawer lists them: the trial detail's own list, else (the
   * job document's best trial) the job's files of that trial (exported models in
   * models/trial<ID>/, its evaluation's files, with sizes) and any artifact not on this server. */
  filesOf(t) {
    if (t.files) return t.files.filter((f) => f.path);
    const known = (this.allFiles || []).filter((f) => f.trial === t.trial_id);
    const paths = new Set(known.map((f) => f.path));
    const artifacts = Object.entries(t.artifacts || {}).filter(([, path]) => path && !paths.has(path))
      .map(([name, path]) => ({ name, path, size: null }));
    return [...artifacts, ...known];
  }

  async loadFiles() {
    try {
      const res = await api(`/dashboard/jobs/${encodeURIComponent(this.id)}/files`);
      this.allFiles = res.data;
      this.jobFiles = res.data.filter((f) => !f.path.startsWith("trials/"));
    } catch {
      this.jobFiles = this.jobFiles || [];
    }
    // The job document's best trial lists no exported models: now the files are known, list them.
    if (this.bestTrial && !this.bestTrial.files) this.renderBestFiles();
    this.renderFiles();
  }

  renderFiles() {
    if (!this.jobFiles) return;
    const best = this.bestTrial;
    const bestFiles = best ? this.filesOf(best) : [];
    // The same list, names and descriptions as the API's files route and the trial detail.
    const listed = new Set(this.jobFiles.map((f) => f.path));
    const items = [
      ...this.jobFiles.map((f) => downloadLink(this.id, f.path, f.path, f.size,
        f.trial !== null && f.trial !== undefined ? `${f.what} · trial #${f.trial}` : f.what)),
      ...bestFiles.filter((f) => !listed.has(f.path)).map((f) => downloadLink(this.id, f.path, f.path, f.size, `${f.what} · best trial`)),
    ];
    clear(this.files, items.length ? h("div", { class: "downloads" }, items)
      : h("div", { class: "muted", id: "files-empty" }, FINISHED.has(this.state.status) ? "This job wrote no files."
        : "results.json (every trial, the front, the best) appears here when the job finishes; files a trial wrote are in its row of the trials table."));
  }

  // ---- actions -----------------------------------------------------------------------------
  /** First click arms the button, a second click within 8 s cancels. Times come from the
   * events themselves, so a click made in time counts even if a long task delayed it. */
  async cancel(event) {
    const at = event ? event.timeStamp : performance.now();
    if (!this.armedAt || at - this.armedAt > CONFIRM_MS) {
      this.armedAt = at;
      this.confirming = true;
      this.renderHeader();
      clearTimeout(this.confirmTimer);
      this.confirmTimer = setTimeout(() => { this.confirming = false; if (this.alive) this.renderHeader(); }, CONFIRM_MS);
      return;
    }
    this.armedAt = null;
    this.confirming = false;
    clearTimeout(this.confirmTimer);
    try {
      const job = await api(`/jobs/${encodeURIComponent(this.id)}/cancel`, { method: "POST" });
      this.state = { ...this.state, ...flatState(job) };
      toast(job.status === "cancelled" ? "Job cancelled" : "Cancelling: running trials stop within seconds");
    } catch (err) {
      toast(err.message, "error");
    }
    this.renderHeader();
  }

  openTrial(t) {
    location.hash = `#/jobs/${this.id}/trials/${t}`;
  }

  showTrial(t) {
    if (!this.alive || !this.objectives) return;
    if (t === null || t === undefined || Number.isNaN(t)) {
      this.drawer?.close();
      this.drawer = null;
      return;
    }
    this.drawer = this.drawer || new TrialDrawer({ id: this.id, objectives: this.objectives, metrics: this.metrics },
      () => { location.hash = `#/jobs/${this.id}`; });
    this.drawer.open(t);
  }
}

function flatState(job) {
  const p = job.progress;
  return {
    status: job.status, reason: job.reason, cancel_requested: job.cancel_requested,
    evaluations: p.evaluations, budget: p.budget, trials: p.trials, complete: p.complete, failed: p.failed,
    cached: p.cached, best_trial_id: job.best ? job.best.trial_id : null, best_reward: job.best_reward,
    hypervolume: job.hypervolume, started_at: job.started_at, finished_at: job.finished_at,
    hv_reference: job.hypervolume_reference ? job.hypervolume_reference.point : null,
    hv_true_front: job.hypervolume_reference ? job.hypervolume_reference.true_front : null,
  };
}

function stat(label, id, fixedNote = null) {
  const value = h("div", { class: "value" }, "—");
  const hint = h("div", { class: "hint" }, " ");
  const fixed = fixedNote ? h("div", { class: "hint formula", title: fixedNote }, fixedNote) : null;
  return {
    el: h("div", { class: "stat", id }, h("div", { class: "label" }, label), value, hint, fixed),
    set(v, note) { value.textContent = v; hint.textContent = note || " "; },
  };
}

const STATUS_WORDS = { succeeded: "Finished", failed: "Failed", cancelled: "Cancelled", exhausted: "Stopped early" };
const statusWord = (status) => STATUS_WORDS[status] || status;

/** The job's own reason, or what its numbers say when it gave none. */
function stopReason(s) {
  if (s.reason) return s.reason;
  if (s.status === "succeeded") {
    return s.budget && s.evaluations >= s.budget ? `all ${fmtInt(s.budget)} evaluations of the budget done`
      : `${fmtInt(s.evaluations)} of ${fmtInt(s.budget)} evaluations done (no reason recorded)`;
  }
  return s.status === "cancelled" ? "cancelled by its owner" : "no reason recorded";
}

/** A compression policy's context: each layer's channels in the reference model, and the kept
 * share of channels against the job's resource target (recorded.policy rows, spec.target). */
function referencePanels(rows, target) {
  if (!Array.isArray(rows)) return [];
  const parsed = rows.filter((r) => typeof r.channels === "string" && /^\d+\/\d+$/.test(r.channels))
    .map((r) => { const [kept, total] = r.channels.split("/").map(Number); return { layer: r.layer, kept, total }; });
  if (!parsed.length) return [];
  const line = target && Number.isFinite(target.ratio) ? targetLine(target) : null;
  return [
    { name: "kept", title: "channels kept (share)", color: "#10b981", line,
      rows: parsed.map((r) => ({ label: r.layer, value: r.total ? r.kept / r.total : 0 })) },
    { name: "reference", title: "reference channels", color: "#94a3b8",
      rows: parsed.map((r) => ({ label: r.layer, value: r.total })) },
  ];
}

const TARGET_METRICS = { flops: "FLOPs", params: "parameters", size: "model size", latency: "latency" };

/** The job's resource target, drawn over the kept share of channels. It is a share of the
 * reference model's FLOPs (parameters, size, latency), not of its channels: the label says so,
 * and the line's tooltip says why the bars need not sit under it. */
export function targetLine(target) {
  const what = TARGET_METRICS[target.metric || "flops"] || String(target.metric);
  const pct = `${+(target.ratio * 100).toFixed(1)}%`;
  return {
    value: target.ratio,
    label: `target: ${pct} of ${what}`,
    title: `The job's target: the compressed model keeps at most ${pct} of the reference model's ${what}. `
      + `It is not a share of channels: ${what} fall faster than the channels kept (a convolution's FLOPs `
      + "scale with the channels kept on both its sides), so the bars can stand above this line and still meet it.",
  };
}

function groupOptions(axes, selected) {
  const groups = [["objective", "Objectives"], ["metrics", "Metrics"], ["recorded", "Recorded"], ["column", "Trial"]];
  return groups.map(([g, label]) => {
    const items = axes.filter((a) => a.group === g);
    if (!items.length) return null;
    return h("optgroup", { label }, items.map((a) => h("option", { value: a.key, selected: a.key === selected }, a.label)));
  });
}
