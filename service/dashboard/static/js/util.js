// Small DOM and formatting helpers shared by every view.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "html") el.innerHTML = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// Plain string work: the first Intl/toLocaleString call costs a few hundred ms (ICU set-up).
function group(intText) {
  return intText.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function fmt(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e7 || a < 1e-3)) return v.toExponential(2);
  if (a >= 1000) {
    const [i, f] = (Math.round(v * 10) / 10).toFixed(1).split(".");
    return f === "0" ? group(i) : `${group(i)}.${f}`;
  }
  return Number(v.toPrecision(digits)).toString();
}

export const fmtInt = (v) => (v === null || v === undefined ? "—" : group(String(Math.round(Number(v)))));

export function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function fmtDuration(s) {
  if (s === null || s === undefined) return "—";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  if (m < 60) return `${m}m ${r}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function relTime(iso) {
  if (!iso) return "—";
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

export function elapsed(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return (end - new Date(job.started_at)) / 1000;
}

export function badge(status, text) {
  return h("span", { class: `badge ${status}` }, text || status);
}

export function progressBar(fraction, status = "") {
  return h("div", { class: `progress ${status}` },
    h("div", { style: { width: `${Math.max(0, Math.min(1, fraction || 0)) * 100}%` } }));
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

export function toast(message, kind = "") {
  const el = h("div", { class: `toast ${kind}` }, message);
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), 4000);
}

export const icons = {
  download: '<svg viewBox="0 0 20 20" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><path d="M10 3v10m0 0l-4-4m4 4l4-4M4 16h12"/></svg>',
  plus: '<svg viewBox="0 0 20 20" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><path d="M10 4v12M4 10h12"/></svg>',
  stop: '<svg viewBox="0 0 20 20" fill="currentColor"><rect x="5" y="5" width="10" height="10" rx="2"/></svg>',
  close: '<svg viewBox="0 0 20 20" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><path d="M5 5l10 10M15 5L5 15"/></svg>',
  upload: '<svg viewBox="0 0 20 20" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><path d="M10 14V4m0 0L6 8m4-4l4 4M4 16h12"/></svg>',
  star: '<svg viewBox="0 0 20 20" fill="currentColor"><path d="M10 1.8l2.5 5.3 5.8.7-4.3 4 1.1 5.7L10 14.7l-5.1 2.8 1.1-5.7-4.3-4 5.8-.7z"/></svg>',
};

export function icon(name) {
  return h("span", { class: "icon", html: icons[name], style: { display: "inline-flex" } });
}

/** Where an artifact of a job downloads from (the session cookie authenticates the link). */
export function artifactUrl(jobId, path) {
  const enc = String(path).split("/").map(encodeURIComponent).join("/");
  return `/api/v1/dashboard/jobs/${encodeURIComponent(jobId)}/artifacts/${enc}`;
}

/** A file: its full name (wrapped, never cut), its size, what it is, and a download button. */
export function downloadLink(jobId, path, label, size, what = null) {
  return h("div", { class: "download", dataset: { file: path } },
    h("div", { class: "file" },
      h("span", { class: "name mono", title: path }, label),
      h("span", { class: "what" }, [what, size !== null && size !== undefined ? fmtBytes(size) : null].filter(Boolean).join(" · "))),
    h("a", { class: "btn small", href: artifactUrl(jobId, path), download: path.split("/").pop(),
      dataset: { path }, "aria-label": `Download ${path}` }, icon("download"), "Download"));
}
