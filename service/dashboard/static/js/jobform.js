// The submit form: paste, upload or drop a JSON job spec; the API's 422 errors are drawn next
// to the line of the field they name.
import { api } from "./api.js";
import { lineOfField, locate, normalizeField } from "./jsonpos.js";
import { clear, h, icon, toast } from "./util.js";

const LINE = 20; // px, must match .editor line-height
const PAD = 10; // px, textarea top padding

export const TEMPLATES = {
  "Random search · accuracy vs Pixel 3 latency": {
    name: "nb201-pixel3-random",
    space: { name: "nb201" },
    agent: { name: "random" },
    evaluator: { name: "tabular", options: { table: "nb201", signal: "val_acc" } },
    profilers: [{ name: "lut:pixel3" }],
    objectives: [{ metric: "val_acc", direction: "max" }, { metric: "pixel3_latency", direction: "min" }],
    budget: { evaluations: 500 },
    executor: { name: "ray", batch_size: 16 },
    seed: 0,
  },
  "MnasNet controller · latency-aware reward": {
    name: "nb201-pixel3-mnas",
    space: { name: "nb201" },
    agent: { name: "mnas" },
    evaluator: { name: "tabular", options: { table: "nb201", signal: "val_acc" } },
    profilers: [{ name: "lut:pixel3" }],
    objectives: [{ metric: "val_acc", direction: "max" }, { metric: "pixel3_latency", direction: "min" }],
    reward: { kind: "mnas", accuracy: "val_acc", latency: "pixel3_latency", target: 10.0, w: -0.07 },
    budget: { evaluations: 300, max_failures: 10 },
    executor: { name: "ray", batch_size: 8 },
    seed: 1,
  },
  "Evolution · three objectives (Edge GPU)": {
    name: "nb201-edgegpu-evolution",
    space: { name: "nb201" },
    agent: { name: "evolution" },
    evaluator: { name: "tabular", options: { table: "nb201", signal: "val_acc" } },
    profilers: [{ name: "lut:edgegpu" }],
    objectives: [{ metric: "val_acc", direction: "max" }, { metric: "edgegpu_latency", direction: "min" },
      { metric: "edgegpu_energy", direction: "min" }],
    budget: { evaluations: 1000 },
    executor: { name: "ray", batch_size: 16 },
    seed: 0,
  },
};

export class JobForm {
  constructor({ onCreated, onClose }) {
    this.onCreated = onCreated;
    this.onClose = onClose;
    this.errors = [];
    this.el = this.build();
    this.setText(JSON.stringify(Object.values(TEMPLATES)[0], null, 2));
    this.loadRegistries();
  }

  build() {
    this.textarea = h("textarea", { id: "spec-text", spellcheck: false, "aria-label": "Job spec (JSON)",
      oninput: () => { this.clearErrors(); this.renderGutter(); },
      onscroll: () => this.syncScroll(),
      onkeydown: (e) => {
        if (e.key === "Tab") {
          e.preventDefault();
          this.textarea.setRangeText("  ", this.textarea.selectionStart, this.textarea.selectionEnd, "end");
          this.renderGutter();
        } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
          e.preventDefault(); this.submit();
        }
      } });
    this.gutter = h("div", { class: "gutter" });
    this.marks = h("div", { class: "marks" });
    this.editor = h("div", { class: "editor", id: "spec-editor" }, this.gutter,
      h("div", { class: "area" }, this.textarea, this.marks));
    for (const ev of ["dragenter", "dragover"]) {
      this.editor.addEventListener(ev, (e) => { e.preventDefault(); this.editor.classList.add("dragging"); });
    }
    for (const ev of ["dragleave", "drop"]) {
      this.editor.addEventListener(ev, () => this.editor.classList.remove("dragging"));
    }
    this.editor.addEventListener("drop", (e) => {
      e.preventDefault();
      const file = e.dataTransfer?.files?.[0];
      if (file) this.readFile(file);
    });
    this.fileInput = h("input", { type: "file", id: "spec-file", accept: ".json,application/json",
      style: { display: "none" }, onchange: () => { if (this.fileInput.files[0]) this.readFile(this.fileInput.files[0]); } });
    const templates = h("select", { id: "spec-template", "aria-label": "Template", onchange: () => {
      this.setText(JSON.stringify(TEMPLATES[templates.value], null, 2));
    } }, Object.keys(TEMPLATES).map((k) => h("option", { value: k }, k)));
    this.errorList = h("ul", { class: "error-list", id: "spec-errors" });
    this.submitBtn = h("button", { class: "btn primary", id: "submit-job", onclick: () => this.submit() }, "Submit job");
    this.help = h("div", { class: "side-help" }, h("div", { class: "muted" }, "Loading the registries…"));
    return h("section", { class: "card panel", id: "job-form" },
      h("div", { class: "card-head" },
        h("h2", {}, "Submit a job"), h("span", { class: "sub grow" }, "Paste, upload or drop a JSON job spec."),
        templates,
        h("button", { class: "btn", onclick: () => this.fileInput.click() }, icon("upload"), "Upload JSON"),
        this.fileInput,
        h("button", { class: "btn ghost small", title: "Close", onclick: () => this.onClose() }, icon("close"))),
      h("div", { class: "card-body" },
        h("div", { class: "editor-wrap" },
          h("div", {}, this.editor, this.errorList),
          this.help),
        h("div", { class: "row", style: { justifyContent: "flex-end", marginTop: "14px" } },
          h("span", { class: "muted", style: { marginRight: "auto", fontSize: "12px" } }, "Ctrl+Enter submits"),
          h("button", { class: "btn", onclick: () => this.format() }, "Format"),
          this.submitBtn)));
  }

  async loadRegistries() {
    try {
      const reg = await api("/registries");
      const block = (title, items) => h("div", {}, h("h3", {}, title),
        h("div", { class: "names" }, items.map((e) => h("code", { title: e.summary }, e.name))));
      clear(this.help, block("Spaces", reg.spaces), block("Agents", reg.agents),
        block("Evaluators", reg.evaluators), block("Profilers", reg.profilers));
    } catch {
      clear(this.help);
    }
  }

  readFile(file) {
    const reader = new FileReader();
    reader.onload = () => { this.setText(String(reader.result)); toast(`Loaded ${file.name}`); };
    reader.readAsText(file);
  }

  setText(text) {
    this.textarea.value = text;
    this.textarea.setSelectionRange(0, 0);
    this.textarea.scrollTop = 0;
    this.clearErrors();
    this.renderGutter();
  }

  format() {
    try {
      this.setText(JSON.stringify(JSON.parse(this.textarea.value), null, 2));
    } catch {
      this.showErrors([{ field: "", message: "not valid JSON" }]);
    }
  }

  renderGutter() {
    const n = this.textarea.value.split("\n").length;
    const bad = new Set(this.errors.map((e) => e.line));
    const frag = document.createDocumentFragment();
    for (let k = 0; k < n; k += 1) frag.append(h("div", { class: bad.has(k) ? "bad" : "" }, k + 1));
    this.gutter.replaceChildren(frag);
    this.syncScroll();
  }

  syncScroll() {
    const top = this.textarea.scrollTop;
    this.gutter.scrollTop = top;
    this.marks.style.transform = `translateY(${-top}px)`;
  }

  clearErrors() {
    if (!this.errors.length) return;
    this.errors = [];
    this.marks.replaceChildren();
    this.errorList.replaceChildren();
  }

  /** Draw each error next to its field's line, and list them under the editor. */
  showErrors(errors, syntax = null) {
    const located = locate(this.textarea.value);
    this.errors = errors.map((e) => ({
      ...e,
      field: normalizeField(e.field),
      line: syntax ? syntax.line : lineOfField(located.paths, e.field),
    }));
    this.marks.replaceChildren(...this.errors.flatMap((e) => [
      h("div", { class: "mark-line", style: { top: `${PAD + e.line * LINE}px` } }),
      h("div", { class: "field-error", dataset: { field: e.field, line: String(e.line) },
        style: { top: `${PAD + e.line * LINE + 1}px` }, title: e.message },
      e.field ? `${e.field}: ${e.message}` : e.message),
    ]));
    this.errorList.replaceChildren(...this.errors.map((e) => h("li", {
      dataset: { field: e.field }, onclick: () => this.jumpTo(e.line),
    }, e.field ? [h("code", {}, e.field), " "] : null, e.message,
    e.valid && !e.message.includes(e.valid.join(", "))
      ? h("div", { class: "valid" }, `Valid: ${e.valid.join(", ")}`) : null)));
    this.renderGutter();
    if (this.errors.length) this.jumpTo(this.errors[0].line);
  }

  jumpTo(line) {
    const lines = this.textarea.value.split("\n");
    let pos = 0;
    for (let k = 0; k < line && k < lines.length; k += 1) pos += lines[k].length + 1;
    const visible = this.textarea.clientHeight / LINE;
    const top = this.textarea.scrollTop / LINE;
    if (line < top || line > top + visible - 2) this.textarea.scrollTop = Math.max(0, (line - 3) * LINE);
    this.textarea.setSelectionRange(pos, pos + (lines[line] || "").length);
    this.syncScroll();
  }

  async submit() {
    const text = this.textarea.value;
    const parsed = locate(text);
    if (parsed.error) {
      this.showErrors([{ field: "", message: `Invalid JSON at line ${parsed.error.line + 1}: ${parsed.error.message}` }],
        parsed.error);
      return;
    }
    this.clearErrors();
    this.submitBtn.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", body: text });
      toast(`Job “${job.name}” submitted`);
      this.onCreated(job);
    } catch (err) {
      if (err.status === 422 && err.errors.length) this.showErrors(err.errors);
      else this.showErrors([{ field: "", message: err.message }]);
    } finally {
      this.submitBtn.disabled = false;
    }
  }
}
