// Entry point: sign-in, the top bar and a hash router (#/jobs, #/jobs/<id>, #/jobs/<id>/trials/<n>).
import { api, signIn, signOut, token } from "./api.js";
import { CompareView } from "./compare.js";
import { DevicesView } from "./devices.js";
import { JobView } from "./job.js";
import { JobsView } from "./jobs.js";
import { clear, h } from "./util.js";

const view = document.getElementById("view");
let current = null; // { kind, key, instance }
let user = null;
let checking = null; // the token check (sign-in) in flight

window.__ls = window.__ls || { drawnAt: {}, events: 0 };

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "signin") return { kind: "signin" };
  if (parts[0] === "compare") return { kind: "compare", ids: (parts[1] || "").split(",").filter(Boolean).map(decodeURIComponent) };
  if (parts[0] === "devices") return { kind: "devices" };
  if (parts[0] === "jobs" && parts[1]) {
    return { kind: "job", id: decodeURIComponent(parts[1]), trial: parts[2] === "trials" ? Number(parts[3]) : null };
  }
  return { kind: "jobs" };
}

function setNav(kind) {
  clear(document.getElementById("nav"),
    user ? h("a", { href: "#/jobs", class: kind === "jobs" || kind === "job" ? "active" : "" }, "Jobs") : null,
    user ? h("a", { href: "#/compare", class: kind === "compare" ? "active" : "" }, "Compare") : null,

    user ? h("a", { href: "#/devices", id: "nav-devices", class: kind === "devices" ? "active" : "" }, "Devices") : null);
  const box = document.getElementById("user");
  if (!user) { clear(box); return; }
  clear(box,
    h("span", { class: "avatar", title: user.name }, user.name.slice(0, 2)),
    h("span", { id: "user-name", class: "user-name" }, user.name),
    h("button", { class: "btn ghost small", id: "sign-out", onclick: async () => {
      await signOut(); token.clear(); user = null; location.hash = "#/signin"; render();
    } }, "Sign out"));
}

function showSignIn(message) {
  current?.instance?.destroy?.();
  current = { kind: "signin" };
  setNav("signin");
  const input = h("input", { type: "password", id: "token", placeholder: "ls_…", autocomplete: "off",
    autofocus: true, "aria-label": "API token" });
  const error = h("div", { class: "form-error", id: "signin-error" }, message || "");
  const button = h("button", { class: "btn primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "card signin", onsubmit: async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) { error.textContent = "Paste your API token."; return; }
    button.disabled = true;
    error.textContent = "";
    try {
      user = await signIn(t);
      token.set(t);
      location.hash = "#/jobs";
      render();
    } catch (err) {
      error.textContent = err.status === 401 ? "That token is not valid (or was revoked)." : err.message;
    } finally {
      button.disabled = false;
    }
  } },
  h("div", { class: "card-body" },
    h("div", {}, h("h1", {}, "Sign in to LightSearch"),
      h("p", { class: "muted", style: { margin: "6px 0 0" } },
        "Use an API token. Create one with ", h("code", {}, "lightsearch token create"), ".")),
    h("label", { class: "field" }, "API token", input),
    error, button));
  clear(view, form);
  input.focus();
}

async function render() {
  const r = route();
  if (!token.get() || r.kind === "signin") {
    if (token.get() && user) { location.hash = "#/jobs"; return; }
    showSignIn();
    return;
  }
  if (!user && !checking) {
    // Check the token (and refresh the session cookie) while the view loads its data.
    checking = signIn(token.get()).then((u) => { user = u; setNav(route().kind); }).catch((err) => {
      token.clear();
      user = null;
      showSignIn(err.status === 401 ? "Your session ended; sign in again." : err.message);
    }).finally(() => { checking = null; });
  }
  setNav(r.kind);
  if (r.kind === "job") {
    if (current?.kind === "job" && current.key === r.id) {
      current.instance.showTrial(r.trial);
      return;
    }
    current?.instance?.destroy?.();
    const instance = new JobView(view, r.id, user);
    current = { kind: "job", key: r.id, instance };
    instance.start().then(() => instance.showTrial(r.trial));
    return;
  }
  if (r.kind === "devices") {
    if (current?.kind === "devices") return;
    current?.instance?.destroy?.();
    current = { kind: "devices", instance: new DevicesView(view) };
    current.instance.start();
    return;
  }
  if (r.kind === "compare") {
    current?.instance?.destroy?.();
    const key = r.ids.join(",");
    const instance = r.ids.length ? new CompareView(view, r.ids) : new JobsView(view, user, { compare: true });
    current = { kind: "compare", key, instance };
    instance.start();
    return;
  }
  if (current?.kind === "jobs") return;
  current?.instance?.destroy?.();
  current = { kind: "jobs", instance: new JobsView(view, user) };
  current.instance.start();
}

window.addEventListener("hashchange", render);
window.addEventListener("ls:unauthorized", () => {
  token.clear();
  user = null;
  showSignIn("Your session ended; sign in again.");
});
render();
export { api };
