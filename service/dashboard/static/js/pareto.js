// The Pareto view's data: a down-sampled snapshot from the server plus every trial the event
// stream delivered since, keyed by trial id (a trial sent twice is stored once).

export function valueOf(trial, key) {
  if (key.startsWith("metrics.")) return trial.m?.[key.slice(8)];
  if (key.startsWith("recorded.")) return trial.rc?.[key.slice(9)];
  return { trial_id: trial.t, reward: trial.r, duration_s: trial.d, evaluation_index: trial.e }[key];
}

const finite = (v) => typeof v === "number" && Number.isFinite(v);

export class ParetoModel {
  constructor(axes, objectives) {
    this.axes = axes;
    this.byKey = new Map(axes.map((a) => [a.key, a]));
    this.objectiveKeys = objectives.map((o) => `metrics.${o.metric}`);
    this.selection = { x: null, y: null, color: null };
    this.points = new Map();
    this.front = new Set();
    this.best = null;
    this.total = 0;
    this.shown = 0;
    this.sampled = false;
    this.live = 0; // points added by the stream since the snapshot
    this.held = 0; // stream points over the budget, waiting for the next snapshot
  }

  axis(key) {
    return this.byKey.get(key) || { key, label: key.replace(/^(metrics|recorded)\./, ""), direction: null };
  }

  keys() {
    const { x, y, color } = this.selection;
    return [x, y, color, ...this.objectiveKeys, "reward"].filter((k, i, a) => k && a.indexOf(k) === i);
  }

  loadSnapshot(s) {
    this.selection = { x: s.x, y: s.y, color: s.color };
    this.points = new Map();
    this.front = new Set(s.front);
    this.best = s.best;
    this.total = s.total;
    this.shown = s.shown;
    this.sampled = s.sampled;
    this.live = 0;
    this.held = 0;
    const cols = s.cols;
    for (let i = 0; i < s.t.length; i += 1) {
      const vals = {};
      for (const k of Object.keys(cols)) vals[k] = cols[k][i];
      this.points.set(s.t[i], { t: s.t[i], k: s.k[i], vals, x: vals[s.x], y: vals[s.y], f: !!s.f[i] });
    }
  }

  /** Trials from the stream; returns the ids that became drawable. Past ``limit`` points,
   * dominated newcomers are only counted: the next server snapshot (down-sampled by the rule
   * a reload uses) brings those that survive it, so live and reload draw the same. */
  addTrials(trials, limit = Infinity) {
    const added = [];
    const keys = this.keys();
    for (const tr of trials) {
      if (tr.s !== "complete" || tr.c) continue;
      const vals = {};
      for (const k of keys) vals[k] = valueOf(tr, k);
      const x = vals[this.selection.x], y = vals[this.selection.y];
      if (!finite(x) || !finite(y)) continue;
      const isNew = !this.points.has(tr.t);
      if (isNew && this.points.size >= limit && !(tr.f || this.front.has(tr.t))) {
        this.total += 1;
        this.held += 1;
        continue;
      }
      this.points.set(tr.t, { t: tr.t, k: tr.k, vals, x, y, f: this.front.has(tr.t) || tr.f });
      if (isNew) { this.total += 1; this.live += 1; added.push(tr.t); }
    }
    return added;
  }

  setFront(ids) {
    this.front = new Set(ids);
    for (const p of this.points.values()) p.f = this.front.has(p.t);
    this.clearHover();
  }

  setBest(id) {
    if (id !== this.best) { this.best = id; this.clearHover(); }
  }

  clearHover() {
    for (const p of this.points.values()) p.hover = null;
  }

  drawable() {
    return Array.from(this.points.values());
  }

  /** The front of the two displayed axes as a step line (both need a direction). */
  frontLine() {
    const dx = this.axis(this.selection.x).direction, dy = this.axis(this.selection.y).direction;
    if (!dx || !dy) return null;
    const better = (a, b, d) => (d === "max" ? a > b : a < b);
    const pts = this.drawable().filter((p) => p.f && finite(p.x) && finite(p.y));
    pts.sort((a, b) => (a.x === b.x ? (better(a.y, b.y, dy) ? -1 : 1) : (better(a.x, b.x, dx) ? -1 : 1)));
    const nd = [];
    let bestY = null;
    for (const p of pts) {
      if (bestY === null || better(p.y, bestY, dy)) { nd.push(p); bestY = p.y; }
    }
    if (!nd.length) return null;
    nd.sort((a, b) => a.x - b.x);
    return { x: nd.map((p) => p.x), y: nd.map((p) => p.y), shape: dx === "min" ? "hv" : "vh" };
  }
}
