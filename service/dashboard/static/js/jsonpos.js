// Where each field of a JSON document sits (line numbers), so an API error that names a field
// ("agent.name", "profilers[0].options.path") can be shown next to that line.

export function normalizeField(field) {
  return String(field || "").replace(/\[(\d+)\]/g, ".$1").replace(/^\./, "");
}

export function locate(text) {
  const starts = [0];
  for (let k = 0; k < text.length; k += 1) if (text[k] === "\n") starts.push(k + 1);
  const lineOf = (pos) => {
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (starts[mid] <= pos) lo = mid; else hi = mid - 1; }
    return lo;
  };
  const paths = new Map();
  let i = 0;
  const fail = (message) => { const e = new Error(message); e.pos = Math.min(i, text.length); throw e; };
  const ws = () => { while (i < text.length && " \t\r\n".includes(text[i])) i += 1; };
  const join = (path, key) => (path === "" ? String(key) : `${path}.${key}`);

  function string() {
    if (text[i] !== '"') fail("expected a string in double quotes");
    const start = i;
    i += 1;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i += 1;
      else if (text[i] === "\n") fail("unterminated string");
      i += 1;
    }
    if (i >= text.length) fail("unterminated string");
    i += 1;
    return JSON.parse(text.slice(start, i));
  }

  function value(path, record) {
    ws();
    if (record && !paths.has(path)) paths.set(path, lineOf(i));
    const c = text[i];
    if (c === "{") {
      i += 1; ws();
      if (text[i] === "}") { i += 1; return; }
      for (;;) {
        ws();
        const keyPos = i;
        const key = string();
        paths.set(join(path, key), lineOf(keyPos));
        ws();
        if (text[i] !== ":") fail(`expected ':' after "${key}"`);
        i += 1;
        value(join(path, key), false);
        ws();
        if (text[i] === ",") { i += 1; continue; }
        if (text[i] === "}") { i += 1; return; }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i += 1; ws();
      if (text[i] === "]") { i += 1; return; }
      for (let n = 0; ; n += 1) {
        value(join(path, n), true);
        ws();
        if (text[i] === ",") { i += 1; continue; }
        if (text[i] === "]") { i += 1; return; }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') { string(); return; }
    const lit = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
    lit.lastIndex = i;
    const m = lit.exec(text);
    if (!m) fail(i >= text.length ? "unexpected end of the document" : `unexpected character '${c}'`);
    i += m[0].length;
  }

  try {
    value("", true);
    ws();
    if (i < text.length) fail("unexpected text after the document");
    return { paths, error: null, lineOf };
  } catch (err) {
    const pos = err.pos ?? 0;
    const line = lineOf(pos);
    return { paths, error: { line, col: pos - starts[line], message: err.message }, lineOf };
  }
}

/** The line of a field, or of its nearest parent that is in the text (0 for the document). */
export function lineOfField(paths, field) {
  let parts = normalizeField(field).split(".").filter((p) => p !== "");
  while (parts.length) {
    const key = parts.join(".");
    if (paths.has(key)) return paths.get(key);
    parts = parts.slice(0, -1);
  }
  return paths.get("") ?? 0;
}
