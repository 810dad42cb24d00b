// The REST client: bearer token from localStorage, a loading indicator, structured errors.

const TOKEN_KEY = "lightsearch.token";
let inflight = 0;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.errors = (body && body.errors) || [];
  }
}

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (t) => localStorage.setItem(TOKEN_KEY, t),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

export function loading(delta) {
  inflight = Math.max(0, inflight + delta);
  const bar = document.getElementById("loading-bar");
  if (bar) bar.classList.toggle("active", inflight > 0);
  document.body.dataset.loading = String(inflight);
}

/** The JSON of a response, or an ApiError with the API's field errors. */
export async function parse(res, auth = null) {
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text.slice(0, 300) }; }
  if (!res.ok) {
    if (res.status === 401 && !auth) window.dispatchEvent(new CustomEvent("ls:unauthorized"));
    throw new ApiError(res.status, data);
  }
  return data;
}

export async function api(path, { method = "GET", body, signal, auth } = {}) {
  const headers = { Accept: "application/json" };
  const t = auth || token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  loading(1);
  try {
    const res = await fetch(`/api/v1${path}`, {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
    });
    return await parse(res, auth);
  } finally {
    loading(-1);
  }
}

/** A request index.html started early (see its inline script), else a fresh one. */
export async function prefetched(kind, id, path) {
  const p = window.__prefetch;
  if (p && p.id === id && p[kind]) {
    const pending = p[kind];
    p[kind] = null;
    loading(1);
    try { return await parse(await pending); } catch (err) {
      if (err instanceof ApiError) throw err;
    } finally { loading(-1); }
  }
  return api(path);
}

let session = null;

/** Check a token and set the session cookie the event stream and downloads use (once). */
export function signIn(t) {
  session = api("/dashboard/session", { method: "POST", auth: t });
  session.catch(() => { session = null; });
  return session;
}

export const sessionReady = () => session || signIn(token.get());

export function signOut() {
  session = null;
  return api("/dashboard/session", { method: "DELETE" }).catch(() => null);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "" && v !== false) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
