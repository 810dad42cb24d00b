// Trial detail in a side drawer: architecture (by layer when it has layers), every metric,
// the error text of a failed trial, and its files.
import { api } from "./api.js";
import { badge, clear, downloadLink, fmt, fmtDuration, h, icon } from "./util.js";

/** Group architecture decisions by layer: "control:layer" (compression) or "b3_kernel" (blocks). */
export function layerRows(arch) {
  const keys = Object.keys(arch || {});
  if (!keys.length) return null;
  const byColon = keys.every((k) => /^[^:]+:.+$/.test(k));
  const byBlock = !byColon && keys.every((k) => /^[a-z]+\d+_.+$/.test(k));
  if (!byColon && !byBlock) return null;
  const layers = new Map();
  const fields = [];
  for (const k of keys) {
    const [field, layer] = byColon ? [k.slice(0, k.indexOf(":")), k.slice(k.indexOf(":") + 1)]
      : [k.slice(k.indexOf("_") + 1), k.slice(0, k.indexOf("_"))];
    if (!fields.includes(field)) fields.push(field);
    if (!layers.has(layer)) layers.set(layer, {});
    layers.get(layer)[field] = arch[k];
  }
  return { fields, layers };
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

function kv(entries) {
  return h("dl", { class: "kv" }, entries.flatMap(([k, v, left]) => [h("dt", {}, k), h("dd", { class: left ? "left" : "" }, v)]));
}

function archSection(trial) {
  const grouped = layerRows(trial.arch);
  if (grouped) {
    return h("table", { class: "layers", id: "trial-layers" },
      h("thead", {}, h("tr", {}, h("th", {}, "Layer"), grouped.fields.map((f) => h("th", {}, f)))),
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
    this.job = job; // { id, objectives }
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
    const metricRows = Object.entries(t.metrics || {}).sort(([a], [b]) => (objectives.has(b) - objectives.has(a)) || a.localeCompare(b))
      .map(([k, v]) => [objectives.has(k) ? h("b", {}, k) : k, fmt(v, 6)]);
    const recorded = Object.entries(t.recorded || {}).map(([k, v]) => [k, typeof v === "number" ? fmt(v, 6) : JSON.stringify(v)]);
    const files = (t.files || []).filter((f) => f.path);
    const missing = (t.files || []).filter((f) => !f.path);
    clear(this.body,
      t.error ? h("div", { class: "section" }, h("h3", {}, "Error"), h("pre", { class: "error-text", id: "trial-error" }, t.error)) : null,
      h("div", { class: "section" }, h("h3", {}, "Metrics"),
        kv([["reward", t.reward === null ? "—" : h("b", {}, fmt(t.reward, 6))], ...metricRows])),
      recorded.length ? h("div", { class: "section" }, h("h3", {}, "Recorded (not seen by the agent)"), kv(recorded)) : null,
      h("div", { class: "section" }, h("h3", {}, "Architecture"), archSection(t),
        h("div", { class: "mono faint", style: { marginTop: "8px", overflowWrap: "anywhere" } }, t.arch_key)),
      h("div", { class: "section" }, h("h3", {}, "Files"),
        files.length ? h("div", { class: "downloads" }, files.map((f) => downloadLink(this.job.id, f.path, f.name, f.size)))
          : h("div", { class: "muted" }, "This trial produced no files."),
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
