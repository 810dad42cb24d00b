// The devices page: remote devices you may use, their agents' status, queue and work done.
import { api } from "./api.js";
import { badge, clear, fmtInt, h, relTime } from "./util.js";

const POLL_MS = 3000;

export class DevicesView {
  constructor(root) {
    this.root = root;
    this.timer = null;
    this.alive = true;
  }

  start() {
    this.countEl = h("span", { class: "muted" });
    this.body = h("div", { class: "table-wrap" }, h("div", { class: "center-spinner", style: { minHeight: "160px" } },
      h("div", { class: "spinner" })));
    clear(this.root,
      h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Devices"), this.countEl)),
      h("section", { class: "card" }, this.body));
    this.load();
  }

  destroy() {
    this.alive = false;
    clearTimeout(this.timer);
  }

  async load() {
    clearTimeout(this.timer);
    if (!this.alive) return;
    try {
      const page = await api("/devices");
      if (!this.alive) return;
      this.render(page);
    } catch (err) {
      if (!this.alive) return;
      clear(this.body, h("div", { class: "empty" }, h("div", { class: "big" }, "Could not load devices"), err.message));
    }
    this.timer = setTimeout(() => this.load(), POLL_MS);
  }

  render(page) {
    this.countEl.textContent = `${fmtInt(page.count)} device${page.count === 1 ? "" : "s"}`;
    if (!page.data.length) {
      clear(this.body, h("div", { class: "empty" }, h("div", { class: "big" }, "No devices"),
        "An admin creates one with ", h("code", {}, "lightsearch device token create --name NAME"), "."));
      return;
    }
    const rows = page.data.map((d) => h("tr", { dataset: { device: d.name, status: d.status } },
      h("td", { class: "name mono" }, `remote:${d.name}`,
        h("div", { class: "faint device-desc" },
          [d.description.cpu, d.description.os, d.description.onnxruntime && `ORT ${d.description.onnxruntime}`]
            .filter(Boolean).join(" · "))),
      h("td", {}, badge(d.status === "online" ? "running" : "cancelled", d.status)),
      h("td", { class: "num" }, fmtInt(d.agents_online)),
      h("td", { class: "muted", title: d.last_heartbeat_at || "" }, d.last_heartbeat_at ? relTime(d.last_heartbeat_at) : "never"),
      h("td", { class: "num" }, fmtInt(d.queue_length)),
      h("td", { class: "num" }, fmtInt(d.measurements_done))));
    clear(this.body, h("table", { class: "data", id: "devices-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Device"), h("th", {}, "Status"), h("th", { class: "num" }, "Agents"),
        h("th", {}, "Last heartbeat"), h("th", { class: "num" }, "Queue"), h("th", { class: "num" }, "Measurements"))),
      h("tbody", {}, rows)));
  }
}
