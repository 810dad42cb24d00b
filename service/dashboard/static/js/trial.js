// Trial detail in a side drawer: architecture (by layer when it has layers), every metric,
// the error text of a failed trial, and its files.
import { api } from "./api.js";
import { policyFigure } from "./charts.js";
import { barPanels } from "./plot.js";
import { badge, clear, downloadLink, fmt, fmtDuration, h, icon } from "./util.js";

// A MnasNet block's decisions in the space's own order (spaces/mnasnet.py); other fields follow.
const BLOCK_FIELDS = ["op", "kernel", "se", "skip", "layers", "width"];

/** Group architecture decisions by layer: "control:layer" (compression) or "b3_kernel" (blocks).
 * Stored architectures need not keep the space's key order (PostgreSQL's jsonb sorts keys by
 * length, sorted JSON alphabetically): blocks come back in numeric order (b2 before b10) and
 * their fields in the space's order. */
export function layerRows(arch) {
  const keys = Object.keys(arch || {});
  if (!keys.length) return null;
  const byColon = keys.every((k) => /^[^:]+:.+$/.test(k));
  const byBlock = !byColon && keys.every((k) => /^[a-z]+\d+_.+$/.test(k));
  if (!byColon && !byBlock) return null;
  const layers = new Map();
  let fields = [];
  for (const k of keys) {
    const [field, layer] = byColon ? [k.slice(0, k.indexOf(":")), k.slice(k.indexOf(":") + 1)]
      : [k.slice(k.indexOf("_") + 1), k.slice(0, k.indexOf("_"))];
    if (!fields.includes(field)) fields.push(field);
    if (!layers.has(layer)) layers.set(layer, {});
    layers.get(layer)[field] = arch[k];
  }
  if (!byBlock) return { fields, layers };
  const rank = (f) => (BLOCK_FIELDS.includes(f) ? BLOCK_FIELDS.indexOf(f) : BLOCK_FIELDS.length);
  fields = fields.map((f, i) => [rank(f), i, f]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]);
  const index = (name) => Number(name.match(/\d+$/)[0]);
  const sorted = new Map([...layers.entries()].sort(([a], [b]) =>
    a.replace(/\d+$/, "").localeCompare(b.replace(/\d+$/, "")) || index(a) - index(b)));
  return { fields, layers: sorted };
}

/** Numeric per-layer decisions of a compression policy, by control; null if not a policy. */
export function policyGroups(arch) {
  const keys = Object.keys(arch || {});
  if (!keys.length || !keys.every((k) => /^[^:]+:.+$/.test(k) && typeof arch[k] === "number")) return null;
  const groups = {};
  for (const k of keys) {
    const i = k.indexOf(":");
    (groups[k.slice(0, i)] ||= []).push({ layer: k.slice(i + 1), value: arch[k] });
  }
  return groups;
}

/** The architecture readable (cell edges, block table or per-layer bars), raw JSON one click away. */
function archSection(trial) {
  return h("div", {}, h("div", { class: "table-wrap" }, archView(trial)),
    h("details", { class: "raw", id: "trial-raw" }, h("summary", {}, "Raw JSON"),
      h("pre", { class: "json" }, JSON.stringify(trial.arch, null, 2))));
}

function kv(entries) {
  return h("dl", { class: "kv" }, entries.flatMap(([k, v, left]) => [h("dt", {}, k), h("dd", { class: left ? "left" : "" }, v)]));
}

/** NAS-Bench-201's cell: "edge_<from>_<to>" -> operation; null for other spaces. */
export function cellEdges(arch) {
  const keys = Object.keys(arch || {});
  if (!keys.length || !keys.every((k) => /^edge_\d+_\d+$/.test(k))) return null;
  return keys.map((k) => { const [, a, b] = k.split("_"); return { from: Number(a), to: Number(b), op: arch[k] }; })
    .sort((x, y) => x.to - y.to || x.from - y.from);
}

function archView(trial) {
  const edges = cellEdges(trial.arch);
  if (edges) {
    return h("table", { class: "layers", id: "trial-layers", dataset: { kind: "cell" } },
      h("thead", {}, h("tr", {}, h("th", {}, "Into node"), h("th", {}, "From node"), h("th", {}, "Operation"))),
      h("tbody", {}, edges.map((e) => h("tr", { dataset: { edge: `${e.from}-${e.to}` } },
        h("td", {}, `node ${e.to}`), h("td", {}, e.from === 0 ? "node 0 (input)" : `node ${e.from}`),
        h("td", { class: "mono" }, e.op === "none" ? "none (edge removed)" : e.op)))));
  }
  const groups = policyGroups(trial.arch);
  if (groups) {
    const el = h("div", { class: "plot", id: "trial-policy", style: { height: `${Math.max(240, 150 * Object.keys(groups).length + 60)}px` } });
    requestAnimationFrame(() => { if (el.isConnected) barPanels(el, policyFigure(groups), { valueText: (v) => fmt(v, 4) }); });
    return h("div", { id: "trial-layers", dataset: { kind: "policy" } }, el);
  }
  const grouped = layerRows(trial.arch);
  if (grouped) {
    const blocks = Object.keys(trial.arch).every((k) => /^b\d+_/.test(k));
    return h("table", { class: "layers", id: "trial-layers", dataset: { kind: blocks ? "blocks" : "layers" } },
      h("thead", {}, h("tr", {}, h("th", {}, blocks ? "Block" : "Layer"), grouped.fields.map((f) => h("th", {}, f)))),
      h("tbody", {}, [...grouped.layers.entries()].map(([layer, vals]) => h("tr", {},
        h("td", { class: "mono" }, layer), grouped.fields.map((f) => h("td", {}, fmt(vals[f])))))));
  }
  return h("table", { class: "layers", id: "trial-layers" },
    h("thead", {}, h("tr", {}, h("th", {}, "Decision"), h("th", {}, "Choice"))),
    h("tbody", {}, Object.entries(trial.arch || {}).map(([k, v]) => h("tr", {},
      h("td", { class: "mono" }, k), h("td", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : fmt(v))))));
}

export class TrialDrawer {
  constructor(job, onClose) {
    this.job = job; // { id, objectives, metrics (metrics.js) }
    this.onClose = onClose;
    this.root = document.getElementById("drawer-root");
    this.onKey = (e) => { if (e.key === "Escape") this.onClose(); };
  }

  async open(trialId) {
    this.trialId = trialId;
    this.body = h("div", { class: "drawer-body" }, h("div", { class: "center-spinner", style: { minHeight: "200px" } }, h("div", { class: "spinner" })));
    this.title = h("h2", {}, `Trial #${trialId}`);
    this.badges = h("div", { class: "row" });
    clear(this.root,
      h("div", { class: "drawer-backdrop", onclick: () => this.onClose() }),
      h("aside", { class: "drawer", id: "trial-drawer", dataset: { trial: String(trialId) }, role: "dialog", "aria-label": `Trial ${trialId}` },
        h("div", { class: "drawer-head" }, this.title, this.badges, h("span", { style: { flex: 1 } }),
          h("button", { class: "btn ghost small", id: "close-trial", title: "Close (Esc)", onclick: () => this.onClose() }, icon("close"))),
        this.body));
    document.addEventListener("keydown", this.onKey);
    try {
      const t = await api(`/dashboard/jobs/${encodeURIComponent(this.job.id)}/trials/${trialId}`);
      if (this.trialId !== trialId) return;
      this.render(t);
    } catch (err) {
      clear(this.body, h("div", { class: "empty" }, h("div", { class: "big" }, "Could not load this trial"), err.message));
    }
  }

  render(t) {
    clear(this.badges, badge(t.state), t.on_front ? h("span", { class: "badge front" }, "Pareto point") : null,
      t.is_best ? h("span", { class: "badge front" }, "Best reward") : null,
      t.cached ? h("span", { class: "badge plain" }, "repeat (cached)") : null);
    const objectives = new Set(this.job.objectives.map((o) => o.metric));
    const m = this.job.metrics;
    const metricRows = Object.entries(t.metrics || {}).sort(([a], [b]) => (objectives.has(b) - objectives.has(a)) || a.localeCompare(b))
      .map(([k, v]) => [h("span", { title: k }, objectives.has(k) ? h("b", {}, m.label(k)) : m.label(k)), m.withUnit(k, fmt(v, 6))]);
    const recorded = Object.entries(t.recorded || {}).filter(([k]) => k !== "policy")
      .map(([k, v]) => [m.label(k), typeof v === "number" ? m.withUnit(k, fmt(v, 6)) : JSON.stringify(v)]);
    const files = (t.files || []).filter((f) => f.path);
    const missing = (t.files || []).filter((f) => !f.path);
    clear(this.body,
      t.error ? h("div", { class: "section" }, h("h3", {}, "Error"), h("pre", { class: "error-text", id: "trial-error" }, t.error)) : null,
      h("div", { class: "section" }, h("h3", {}, "Metrics"),
        kv([["reward", t.reward === null ? "—" : h("b", {}, fmt(t.reward, 6))], ...metricRows]),
        m.formula ? h("div", { class: "formula", id: "trial-formula" }, "reward = ", h("code", {}, m.formula)) : null),
      recorded.length ? h("div", { class: "section" }, h("h3", {}, "Recorded (not seen by the agent)"), kv(recorded)) : null,
      h("div", { class: "section" }, h("h3", {}, "Architecture"), archSection(t),
        h("div", { class: "mono faint", style: { marginTop: "8px", overflowWrap: "anywhere" } }, t.arch_key)),
      h("div", { class: "section" }, h("h3", {}, "Files"),
        files.length ? h("div", { class: "downloads", id: "trial-files" }, files.map((f) => downloadLink(this.job.id, f.path, f.path, f.size, f.what)))
          : h("div", { class: "muted", id: "trial-files" }, "This trial produced no files."),
        missing.length ? h("div", { class: "faint", style: { marginTop: "6px" } }, `Not on this server: ${missing.map((f) => f.name).join(", ")}`) : null),
      h("div", { class: "section" }, h("h3", {}, "Run"), kv([
        ["evaluation", t.evaluation_index ?? "—"], ["duration", fmtDuration(t.duration_s)], ["node", t.node || "—"],
      ])),
      Object.keys(t.info || {}).length ? h("div", { class: "section" }, h("h3", {}, "Info"), h("pre", { class: "json" }, JSON.stringify(t.info, null, 2))) : null);
  }

  close() {
    document.removeEventListener("keydown", this.onKey);
    clear(this.root);
    this.trialId = null;
  }
}
