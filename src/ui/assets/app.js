// p2p-ui's page: members from the event stream, queries and drift through
// POST, counters polled. Plain JavaScript, nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);

// The token comes in the URL's fragment (#token=...), which the browser
// never sends anywhere; it is kept in this tab's sessionStorage (which is
// this dashboard's alone: scheme, host and port) and goes with every API
// request as a header. No cookie: those are shared by every port of a host.
const TOKEN = (() => {
  const m = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("p2p-ui-token", m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("p2p-ui-token") || "";
})();
const AUTH = { "Authorization": "Bearer " + TOKEN, "X-P2P-UI": "1" };
const HEADERS = { "Content-Type": "application/json", ...AUTH };

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const k of kids) e.append(k);
  return e;
}

function show(v) {
  if (v === undefined || v === null) return "";
  if (Array.isArray(v)) return v.join(",");
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => k + "=" + x).join(",");
  return String(v);
}

// Sortable tables: a click (or Enter) on a header button sorts by it.
function sortable(table, rowsOf, render) {
  const state = { key: null, dir: 1 };
  table.querySelector("thead").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-key]");
    if (!b) return;
    state.dir = state.key === b.dataset.key ? -state.dir : 1;
    state.key = b.dataset.key;
    state.num = !!b.dataset.num;
    for (const o of table.querySelectorAll("thead button")) o.removeAttribute("aria-sort");
    b.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
    render();
  });
  return (rows) => {
    if (!state.key) return rows;
    const k = state.key;
    return rows.slice().sort((a, b) => {
      const x = a[k], y = b[k];
      if (state.num || (typeof x === "number" && typeof y === "number")) return ((x || 0) - (y || 0)) * state.dir;
      return show(x).localeCompare(show(y), undefined, { numeric: true }) * state.dir;
    });
  };
}

// ---- Members ----
const members = new Map();
const flashed = new Map();
const membersTable = $("members");
const sortMembers = sortable(membersTable, null, renderMembers);

function renderMembers() {
  const body = membersTable.querySelector("tbody");
  const rows = sortMembers([...members.values()]);
  body.replaceChildren(...rows.map((m) => {
    const tr = el("tr");
    tr.dataset.name = m.name;
    tr.dataset.state = m.state;
    if ((flashed.get(m.name) || 0) > Date.now()) tr.className = "changed";
    const name = m.self ? m.name + " (this one)" : m.name;
    const cells = [name, m.addr, m.state, m.incarnation, show(m.tags) || "-", m.since || "",
      show(m.groups) || "-", m.cert_expires || "-"];
    cells.forEach((c, i) => {
      const td = el("td", { textContent: String(c) });
      if (i === 2) td.className = "state state-" + m.state;
      tr.append(td);
    });
    return tr;
  }));
  const alive = rows.filter((m) => m.state === "alive").length;
  $("members-count").textContent = "(" + alive + " alive of " + rows.length + ")";
}

function daemonState(up, message) {
  const p = $("daemon-state");
  p.textContent = up ? "daemon connected" : "daemon unreachable: " + message;
  p.className = up ? "up" : "down";
}

function flash(name) {
  flashed.set(name, Date.now() + 4000);
  setTimeout(renderMembers, 4100);
}

// The members' event stream, read with fetch (EventSource cannot send the
// token as a header); when it ends or fails, it is asked again.
function followMembers() {
  const on = {
    snapshot(data) {
      const d = JSON.parse(data);
      const before = new Map(members);
      members.clear();
      for (const m of d.members) {
        members.set(m.name, m);
        const old = before.get(m.name);
        if (before.size && (!old || old.state !== m.state)) flash(m.name);
      }
      daemonState(d.up, d.message);
      renderMembers();
    },
    member(data) {
      const d = JSON.parse(data);
      members.set(d.member.name, d.member);
      flash(d.member.name);
      renderMembers();
    },
    daemon(data) {
      const d = JSON.parse(data);
      daemonState(d.up, d.message);
    },
  };
  const again = (why) => {
    $("daemon-state").textContent = why;
    $("daemon-state").className = "down";
    setTimeout(followMembers, 2000);
  };
  if (!TOKEN) {
    $("daemon-state").textContent = "no token: open the URL p2p-ui printed (with its #token=)";
    $("daemon-state").className = "down";
    return;
  }
  readStream("/api/events", { headers: AUTH }, (name, data) => on[name] && on[name](data))
    .then(() => again("dashboard stream ended; retrying…"),
      (e) => again("dashboard unreachable; retrying… (" + e.message + ")"));
}

// ---- Event streams ----
function postStream(url, body, onEvent, signal) {
  return readStream(url, { method: "POST", headers: HEADERS, body: JSON.stringify(body), signal }, onEvent);
}

// Reads a text/event-stream answer, calling onEvent(name, data) per event.
async function readStream(url, init, onEvent) {
  const r = await fetch(url, init);
  if (!r.ok) throw new Error(await r.text());
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (!block.startsWith(":")) onEvent(name, data.join("\n"));
    }
  }
}

// One path a line, kept as typed (a name may begin or end with a space);
// only a line's CR (pasted from elsewhere) and empty lines are dropped.
function lines(text) {
  return text.split("\n").map((s) => s.replace(/\r$/, "")).filter((s) => s.length);
}
function list(text) {
  return text.split(",").map((s) => s.trim()).filter((s) => s.length);
}

// ---- Query ----
const nLines = (n) => n + (n === 1 ? " line" : " lines");
let queryLines = [];
let queryRows = [];
let queryCols = [];
let queryAbort = null;
const queryTable = $("query-table");
const sortQuery = sortable(queryTable, null, renderQuery);

function flat(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) out[k + "." + k2] = v2;
    } else out[k] = v;
  }
  return out;
}

function renderQuery() {
  const head = el("tr", {}, ...queryCols.map((c) => el("th", { scope: "col" }, el("button", { type: "button", textContent: c }, ))));
  head.querySelectorAll("button").forEach((b, i) => { b.dataset.key = queryCols[i]; });
  const thead = queryTable.querySelector("thead");
  const sorted = thead.querySelector("button[aria-sort]");
  if (!sorted || thead.children[0]?.children.length !== queryCols.length) thead.replaceChildren(head);
  const rows = sortQuery(queryRows);
  queryTable.querySelector("tbody").replaceChildren(...rows.map((r) => {
    const tr = el("tr", {}, ...queryCols.map((c) => el("td", { textContent: show(r[c]) })));
    if (r["error.code"]) tr.className = "error";
    return tr;
  }));
}

let renderPending = false;
function renderSoon() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; renderQuery(); });
}

function download(name, type, text) {
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function csv() {
  const q = (v) => {
    let s = show(v);
    // A text cell a spreadsheet would run as a formula (a file named
    // "=HYPERLINK(...)") is kept as text, as OWASP advises.
    if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  return [queryCols.map(q).join(",")].concat(queryRows.map((r) => queryCols.map((c) => q(r[c])).join(","))).join("\r\n") + "\r\n";
}

$("query-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (queryAbort) queryAbort.abort();
  queryLines = []; queryRows = []; queryCols = [];
  queryTable.querySelector("thead").replaceChildren();
  renderQuery();
  const errs = $("query-stderr");
  errs.hidden = true; errs.textContent = "";
  const form = {
    command: $("query-command").value,
    paths: lines($("query-paths").value),
    placement: $("query-placement").value,
    peers: list($("query-peers").value),
    where: list($("query-where").value),
    group: $("query-group").checked,
    recursive: $("query-recursive").checked,
  };
  const state = $("query-state");
  state.textContent = "running…";
  $("query-stop").disabled = false;
  $("query-jsonl").disabled = $("query-csv").disabled = true;
  queryAbort = new AbortController();
  try {
    await postStream("/api/query", form, (name, data) => {
      if (name === "out") {
        queryLines.push(data);
        let row;
        try { row = flat(JSON.parse(data)); } catch (e) { row = { line: data }; }
        for (const k of Object.keys(row)) if (!queryCols.includes(k)) queryCols.push(k);
        queryRows.push(row);
        state.textContent = nLines(queryRows.length) + "…";
        renderSoon();
      } else if (name === "err") {
        errs.hidden = false;
        errs.textContent += data + "\n";
      } else if (name === "exit") {
        const st = JSON.parse(data).status;
        state.textContent = nLines(queryRows.length) + ", exit status " + st + (st === 0 ? "" : st === 1 ? " (some items failed)" : "");
      }
    }, queryAbort.signal);
  } catch (e) {
    state.textContent = e.name === "AbortError" ? "stopped" : "failed: " + e.message;
  }
  $("query-stop").disabled = true;
  $("query-jsonl").disabled = $("query-csv").disabled = queryLines.length === 0;
  renderQuery();
});
$("query-stop").addEventListener("click", () => { if (queryAbort) queryAbort.abort(); });
$("query-jsonl").addEventListener("click", () => download("p2p-" + $("query-command").value + ".jsonl", "application/x-ndjson", queryLines.map((l) => l + "\n").join("")));
$("query-csv").addEventListener("click", () => download("p2p-" + $("query-command").value + ".csv", "text/csv", csv()));

// ---- Drift ----
function groupClass(answer, i) {
  if (i === null || i === undefined) return "gnone";
  if (answer && answer.error) return "gerr";
  return "g" + Math.min(i, 5);
}

function shortAnswer(a) {
  if (!a) return "—";
  if (a.error) return a.error.code;
  if (a.sha256) return a.sha256.slice(0, 8);
  for (const k of ["lines", "files", "size"]) if (k in a) return k + " " + a[k];
  return "answer";
}

$("drift-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const state = $("drift-state");
  state.textContent = "asking every member…";
  $("drift-detail").hidden = true;
  const form = { command: $("drift-command").value, paths: lines($("drift-paths").value), where: list($("drift-where").value) };
  let d;
  try {
    const r = await fetch("/api/drift", { method: "POST", headers: HEADERS, body: JSON.stringify(form) });
    if (!r.ok) throw new Error(await r.text());
    d = await r.json();
    if (d.error) throw new Error(d.error);
  } catch (e) {
    state.textContent = "failed: " + e.message;
    return;
  }
  state.textContent = d.paths.length + " paths × " + d.members.length + " members, exit status " + d.exit +
    (d.stderr.length && !d.paths.length ? ": " + d.stderr.join("; ") : "") +
    (d.truncated ? " (cut short: too many answers to show; ask fewer paths)" : "");
  $("drift-outliers").textContent = d.outliers.length ? "Outliers: " + d.outliers.join(", ") : (d.paths.length ? "Every member agrees." : "");
  $("drift-outliers").dataset.outliers = d.outliers.join(",");
  const table = $("drift-table");
  const head = el("tr", {}, el("th", { scope: "col", textContent: "path" }),
    ...d.members.map((m) => {
      const th = el("th", { scope: "col", textContent: m });
      th.dataset.member = m;
      if (d.outliers.includes(m)) th.className = "outlier";
      return th;
    }));
  const rows = d.paths.map((p) => {
    const tr = el("tr", {}, el("th", { scope: "row", textContent: p.path }));
    p.cells.forEach((g, j) => {
      const a = g === null ? null : p.answers[g];
      const b = el("button", { type: "button", className: "cell " + groupClass(a, g), textContent: shortAnswer(a) });
      b.dataset.member = d.members[j];
      b.dataset.group = g === null ? "" : String(g);
      b.title = d.members[j] + ": " + (g === null ? "no answer" : "answer " + (g + 1) + " of " + p.answers.length);
      b.addEventListener("click", () => {
        $("drift-detail-title").textContent = d.members[j] + " — " + p.path;
        $("drift-detail-body").textContent = a ? JSON.stringify(a, null, 2) : "no answer";
        $("drift-detail").hidden = false;
      });
      tr.append(el("td", {}, b));
    });
    return tr;
  });
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
});

// ---- Status ----
function human(n) {
  const u = ["", "k", "M", "G", "T"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : Math.round(n * 10) / 10) + u[i];
}

function chart(canvas, points) {
  const c = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  c.clearRect(0, 0, w, h);
  const max = Math.max(1, ...points);
  c.strokeStyle = "#0b5cad";
  c.lineWidth = 2;
  c.beginPath();
  points.forEach((v, i) => {
    const x = points.length < 2 ? 0 : (i / (points.length - 1)) * (w - 4) + 2;
    const y = h - 2 - (v / max) * (h - 14);
    if (i) c.lineTo(x, y); else c.moveTo(x, y);
  });
  c.stroke();
  c.fillStyle = "#4a535c";
  c.font = "11px sans-serif";
  c.fillText("max " + human(max), 4, 11);
}

function rates(history, key) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const dt = Math.max(1, history[i].t - history[i - 1].t);
    out.push(Math.max(0, history[i][key] - history[i - 1][key]) / dt);
  }
  return out;
}

async function pollStatus() {
  try {
    const r = await fetch("/api/status", { headers: AUTH });
    const d = await r.json();
    const dl = $("status-fields");
    if (d.status) {
      const f = flat(d.status);
      dl.replaceChildren(...Object.entries(f).map(([k, v]) => el("div", { className: "kv" }, el("dt", { textContent: k }), el("dd", { textContent: show(v) }))));
    } else {
      dl.replaceChildren(el("div", { className: "kv" }, el("dt", { textContent: "daemon" }), el("dd", { className: "error", textContent: d.message })));
    }
    for (const key of ["queries", "bytes", "rejected"]) {
      const r = rates(d.history, key);
      chart($("chart-" + key), r);
      $("now-" + key).textContent = r.length ? human(r[r.length - 1]) : "";
    }
  } catch (e) { /* the next poll tries again */ }
  setTimeout(pollStatus, 2000);
}

followMembers();
pollStatus();
