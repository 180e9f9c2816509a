// The eventkit web console: plain JavaScript, no dependency, no external
// URL. Every value that comes from an event is written with textContent,
// never as HTML.
"use strict";

const TOKEN_KEY = "eventkit.token";
const TAIL_MAX = 500; // rows kept in the live tail
const $ = (sel) => document.querySelector(sel);

let refreshTimer = null;
let tailAbort = null;
let eventsNext = null;

// ---- HTTP --------------------------------------------------------------

class HTTPError extends Error {
  constructor(status, detail) {
    super(detail || "HTTP " + status);
    this.status = status;
  }
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const tok = sessionStorage.getItem(TOKEN_KEY);
  if (tok) h["Authorization"] = "Bearer " + tok;
  return h;
}

// api fetches path with the token; it throws HTTPError on an error answer
// (showing the login form on 401).
async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || "GET", headers: headers(opts.headers), signal: opts.signal, credentials: "omit" };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const r = await fetch(path, init);
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail || ""; } catch (e) { /* not problem+json */ }
    // A token refused for reading: ask for another one.
    if (r.status === 401 || (r.status === 403 && init.method === "GET")) showLogin(detail);
    throw new HTTPError(r.status, detail || (r.status + " " + r.statusText));
  }
  return r;
}

async function apiJSON(path, opts) {
  return (await api(path, opts)).json();
}

// ndjson reads an application/x-ndjson answer into its lines' values.
async function ndjson(path) {
  const text = await (await api(path)).text();
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

// ---- small DOM helpers ---------------------------------------------------

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, onclick) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    if (c instanceof Node) {
      const td = el("td");
      td.appendChild(c);
      tr.appendChild(td);
    } else if (typeof c === "number") {
      tr.appendChild(el("td", c.toLocaleString("en-US"), "num"));
    } else {
      tr.appendChild(el("td", c === undefined || c === null ? "" : c));
    }
  }
  if (onclick) {
    tr.classList.add("click");
    tr.addEventListener("click", onclick);
  }
  return tr;
}

// The columns of each table (a name ending in "#" is a number, aligned
// right).
const COLUMNS = {
  "#topics-table": ["Topic", "Stored#", "Events/s#", "Accepted#", "Accepted bytes#", "Mean size#", "Last accepted"],
  "#tail-table": ["Time", "Topic", "Type", "Source", "Subject", "Id"],
  "#events-table": ["Position", "Stored", "Topic", "Type", "Subject", "Id"],
  "#dl-table": ["Position", "Subscription", "Original topic", "Type", "Id", "Attempts", "Error", ""],
  "#types-table": ["Source", "Type", "Count#", "First seen", "Last seen"],
};

// tbody returns the body of the table sel, made with its head (and emptied
// when clear is true).
function tbody(sel, clear) {
  const t = $(sel);
  if (!t.tHead && COLUMNS[sel]) {
    const tr = t.createTHead().insertRow();
    for (const c of COLUMNS[sel]) tr.appendChild(el("th", c.replace(/#$/, ""), c.endsWith("#") ? "num" : ""));
  }
  const b = t.tBodies[0] || t.createTBody();
  if (clear) b.replaceChildren();
  return b;
}

// numeric marks the cells of tr in numeric columns.
function numeric(sel, tr) {
  COLUMNS[sel].forEach((c, i) => { if (c.endsWith("#") && tr.cells[i]) tr.cells[i].className = "num"; });
}

function setStatus(msg, isError) {
  const s = $("#status");
  s.textContent = msg || "";
  s.classList.toggle("error", !!isError);
}

function fail(err) {
  if (err && err.name === "AbortError") return;
  setStatus(err && err.message ? err.message : String(err), true);
}

function fmtTime(t) {
  if (!t || t.startsWith("0001-")) return "";
  const d = new Date(t);
  return isNaN(d) ? t : d.toISOString().replace("T", " ").replace("Z", "");
}

function fmtBytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + " MiB";
  return (n / (1 << 30)).toFixed(2) + " GiB";
}

// parseFilters reads "k=v k2=v2" (or one per line) into an object.
function parseFilters(s) {
  const out = {};
  for (const part of s.split(/[\s,]+/)) {
    if (!part) continue;
    const i = part.indexOf("=");
    if (i <= 0) throw new Error("attribute filter " + JSON.stringify(part) + ": want name=value");
    out[part.slice(0, i).toLowerCase()] = part.slice(i + 1);
  }
  return out;
}

function attr(ev, name) {
  const v = ev ? ev[name] : undefined;
  return v === undefined || v === null ? "" : String(v);
}

function matches(ev, filters) {
  for (const k in filters) {
    if (attr(ev, k) !== filters[k]) return false;
  }
  return true;
}

// ---- login ---------------------------------------------------------------

function showLogin(detail) {
  stopTail();
  clearInterval(refreshTimer);
  $("#login").hidden = false;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  setStatus(detail || "a token is required", true);
}

$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
  $("#token").value = "";
  $("#login").hidden = true;
  route();
});

$("#logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin("token forgotten");
});

// ---- event detail --------------------------------------------------------

// dataText renders an event's data for reading: JSON pretty-printed, text
// as it is, binary as a hex dump.
function dataText(ev) {
  if (ev.data_base64 !== undefined) {
    const bin = atob(ev.data_base64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const printable = bytes.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
    if (printable) return bin;
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const chunk = Array.from(bytes.slice(i, i + 16));
      lines.push(i.toString(16).padStart(8, "0") + "  " + chunk.map((b) => b.toString(16).padStart(2, "0")).join(" "));
    }
    return lines.join("\n") + "\n(" + bytes.length + " bytes of binary data)";
  }
  if (ev.data === undefined) return "(no data)";
  if (typeof ev.data === "string") {
    try { return JSON.stringify(JSON.parse(ev.data), null, 2); } catch (e) { return ev.data; }
  }
  return JSON.stringify(ev.data, null, 2);
}

// showDetail opens the detail panel on an item ({topic, event, position?,
// stored?, subscription?}).
function showDetail(item) {
  const ev = item.event || {};
  const tb = tbody("#detail-attrs", true);
  const meta = [["topic", item.topic], ["position", item.position], ["stored", item.stored], ["subscription", item.subscription]];
  const tp = attr(ev, "traceparent").split("-");
  if (tp.length === 4) meta.push(["trace id", tp[1]]);
  for (const [k, v] of meta) {
    if (v !== undefined && v !== null && v !== "") tb.appendChild(row([el("b", k), v]));
  }
  for (const k of Object.keys(ev).sort()) {
    if (k === "data" || k === "data_base64") continue;
    const v = ev[k];
    tb.appendChild(row([k, typeof v === "object" ? JSON.stringify(v) : String(v)]));
  }
  $("#detail-data").textContent = dataText(ev);
  $("#detail").hidden = false;
}

$("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; });

// ---- topics --------------------------------------------------------------

async function loadTopics() {
  const t = await apiJSON("/console/api/topics");
  const s = t.stream;
  $("#stream-summary").textContent = s
    ? "Store " + s.name + ": " + s.messages.toLocaleString("en-US") + " events, " + fmtBytes(s.bytes) +
      (s.max_bytes > 0 ? " of " + fmtBytes(s.max_bytes) : "") + (s.messages ? ", from " + fmtTime(s.first) + " to " + fmtTime(s.last) : "")
    : "The broker's store is not inspectable (not JetStream).";
  const tb = tbody("#topics-table", true);
  for (const x of t.topics) {
    const mean = x.accepted ? Math.round(x.accepted_bytes / x.accepted) + " B" : "";
    const tr = row([x.topic, x.stored === null ? "?" : x.stored, x.rate.toFixed(2), x.accepted, fmtBytes(x.accepted_bytes), mean, fmtTime(x.last_seen)],
      () => { $("#events-topic").value = x.topic; location.hash = "#events"; });
    tr.dataset.topic = x.topic;
    numeric("#topics-table", tr);
    tb.appendChild(tr);
  }
  if (t.truncated) tb.appendChild(row(["more topics exist than are listed"]));
}

// ---- live tail -----------------------------------------------------------

function stopTail() {
  if (tailAbort) tailAbort.abort();
  tailAbort = null;
}

// startTail reads /events/stream with fetch (EventSource cannot send the
// token) and keeps the events that pass the attribute filters.
async function startTail() {
  stopTail();
  let filters;
  try { filters = parseFilters($("#tail-filter").value); } catch (e) { fail(e); return; }
  const pattern = $("#tail-topic").value.trim() || ">";
  const ctl = new AbortController();
  tailAbort = ctl;
  const state = $("#tail-state");
  state.textContent = "connecting…";
  state.dataset.state = "connecting";
  try {
    const r = await api("/events/stream?topic=" + encodeURIComponent(pattern), { signal: ctl.signal, headers: { Accept: "text/event-stream" } });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const msg = buf.slice(0, i);
        buf = buf.slice(i + 2);
        tailMessage(msg, filters, pattern);
      }
    }
    if (tailAbort === ctl) state.textContent = "the stream ended";
  } catch (e) {
    if (tailAbort === ctl) { state.textContent = "stopped"; fail(e); }
  }
}

function tailMessage(msg, filters, pattern) {
  const lines = msg.split("\n");
  if (lines[0].startsWith(": subscribed")) {
    const f = Object.keys(filters).map((k) => k + "=" + filters[k]).join(" ");
    $("#tail-state").textContent = "live on " + pattern + (f ? ", keeping " + f : "");
    $("#tail-state").dataset.state = "live";
    return;
  }
  const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
  if (!data) return;
  const item = JSON.parse(data);
  if (!matches(item.event, filters)) return;
  const ev = item.event;
  const tr = row([fmtTime(ev.time || new Date().toISOString()), item.topic, attr(ev, "type"), attr(ev, "source"), attr(ev, "subject"), attr(ev, "id")],
    () => showDetail(item));
  tr.dataset.id = attr(ev, "id");
  const tb = tbody("#tail-table");
  tb.insertBefore(tr, tb.firstChild);
  while (tb.children.length > TAIL_MAX) tb.removeChild(tb.lastChild);
}

$("#tail-form").addEventListener("submit", (e) => { e.preventDefault(); tbody("#tail-table", true); startTail(); });
$("#tail-clear").addEventListener("click", () => tbody("#tail-table", true));

// ---- stored events (GET /events) ------------------------------------------

function eventsQuery(after) {
  const q = new URLSearchParams();
  q.set("topic", $("#events-topic").value.trim() || ">");
  const since = $("#events-since").value.trim();
  if (since) q.set("since", since);
  const sql = $("#events-sql").value.trim();
  if (sql) q.set("sql", sql);
  const f = parseFilters($("#events-filter").value);
  for (const k in f) q.set(k, f[k]);
  q.set("limit", "100");
  if (after) q.set("after", after);
  return "/events?" + q.toString();
}

async function loadEvents(after) {
  const lines = await ndjson(eventsQuery(after));
  const tb = tbody("#events-table", !after);
  eventsNext = null;
  for (const x of lines) {
    if (x.event === undefined) {
      eventsNext = x.more ? x.next : null;
      continue;
    }
    const tr = row([x.position, fmtTime(x.stored), x.topic, attr(x.event, "type"), attr(x.event, "subject"), attr(x.event, "id")],
      () => apiJSON("/events/" + encodeURIComponent(x.position)).then(showDetail).catch(fail));
    tr.dataset.position = x.position;
    tb.appendChild(tr);
  }
  $("#events-more").hidden = !eventsNext;
}

$("#events-form").addEventListener("submit", (e) => { e.preventDefault(); loadEvents().catch(fail); });
$("#events-more").addEventListener("click", () => loadEvents(eventsNext).catch(fail));

// ---- dead letters --------------------------------------------------------

async function loadDeadLetters() {
  const sub = $("#dl-sub").value.trim();
  const q = new URLSearchParams({ limit: "500" });
  if (sub) q.set("subscription", sub);
  const items = await ndjson("/deadletters?" + q.toString());
  const tb = tbody("#dl-table", true);
  for (const x of items) {
    if (x.event === undefined) continue; // a trailer
    const ev = x.event;
    const btn = el("button", "Re-drive");
    btn.type = "button";
    btn.className = "redrive";
    btn.addEventListener("click", (e) => { e.stopPropagation(); redrive(x.position); });
    const tr = row([x.position, x.subscription, attr(ev, "dlqtopic"), attr(ev, "type"), attr(ev, "id"), attr(ev, "dlqattempts"), attr(ev, "dlqerror"), btn],
      () => showDetail(x));
    tr.dataset.position = x.position;
    tb.appendChild(tr);
  }
  if (!tb.children.length) tb.appendChild(row(["no dead letters"]));
}

// redrive publishes a dead letter again to its original topic (admin
// scope). The request carries the token in a header and a JSON content
// type, which a page of another origin cannot send without CORS allowing
// it; the server refuses browsers' cross-origin writes too.
async function redrive(position) {
  try {
    const item = await apiJSON("/deadletters/" + encodeURIComponent(position) + "/redrive", { method: "POST", body: {} });
    setStatus("re-driven " + attr(item.event, "id") + " to " + item.topic);
    await loadDeadLetters();
  } catch (e) { fail(e); }
}

$("#dl-form").addEventListener("submit", (e) => { e.preventDefault(); loadDeadLetters().catch(fail); });
$("#dl-redrive-all").addEventListener("click", async () => {
  const sub = $("#dl-sub").value.trim();
  if (!sub) { setStatus("name the subscription whose dead letters to re-drive", true); return; }
  try {
    const r = await apiJSON("/deadletters/redrive?subscription=" + encodeURIComponent(sub), { method: "POST", body: {} });
    setStatus("re-driven " + r.redriven + " dead letters of " + sub);
    await loadDeadLetters();
  } catch (e) { fail(e); }
});

// ---- subscriptions -------------------------------------------------------

function fmtSeconds(s) {
  if (s === 0) return "0";
  const trim = (x) => String(Number(x.toPrecision(3)));
  if (s < 1e-3) return trim(s * 1e6) + " µs";
  if (s < 1) return trim(s * 1e3) + " ms";
  return trim(s) + " s";
}

// heatmapTable draws a latency heatmap: one row per power of two of
// seconds (slowest on top), one column per interval, darker for more.
function heatmapTable(h) {
  const t = el("table", null, "heatmap");
  let max = 0;
  for (const c of h.columns) for (const n of c.counts) max = Math.max(max, n);
  for (let r = h.rows.length - 1; r >= 0; r--) {
    const tr = document.createElement("tr");
    tr.appendChild(el("th", "≤ " + fmtSeconds(h.rows[r])));
    for (const c of h.columns) {
      const n = c.counts[r];
      const td = el("td");
      td.dataset.count = n;
      td.dataset.le = h.rows[r];
      td.title = n + " deliveries ≤ " + fmtSeconds(h.rows[r]) + " in the interval ending " + fmtTime(c.end);
      const a = n ? 0.15 + 0.85 * Math.log(1 + n) / Math.log(1 + max) : 0;
      td.style.backgroundColor = n ? "rgba(36, 87, 197, " + a.toFixed(3) + ")" : "#eef1f5";
      tr.appendChild(td);
    }
    t.appendChild(tr);
  }
  return t;
}

async function loadSubscriptions() {
  const d = await apiJSON("/console/api/subscriptions");
  const box = $("#subs");
  box.replaceChildren();
  if (!d.subscriptions.length) box.appendChild(el("p", "No subscriptions.", "muted"));
  for (const s of d.subscriptions) {
    const div = el("div", null, "sub");
    div.dataset.id = s.id;
    div.appendChild(el("h3", s.id + (s.from_configuration ? " (configuration)" : " (Subscriptions API)")));
    const kv = el("div", null, "kv");
    const add = (k, v, name) => {
      const span = el("span", k + " ");
      const b = el("b", v);
      if (name) b.dataset.field = name;
      span.appendChild(b);
      kv.appendChild(span);
    };
    add("topic", s.topic);
    add("sink", s.sink);
    add("dead letters to", s.dead_letter);
    for (const o of ["delivered", "failed", "dead_lettered", "filtered"]) add(o.replace("_", " "), s.outcomes[o] || 0, o);
    if (s.lag) {
      add("lag", s.lag.pending, "lag");
      add("awaiting ack", s.lag.ack_pending, "ack_pending");
      add("redelivered", s.lag.redelivered, "redelivered");
    } else {
      add("lag", "unknown", "lag");
    }
    div.appendChild(kv);
    if (s.latency.rows.length) {
      div.appendChild(el("p", "Delivery time: one row per power of two, one column per 5 s interval.", "muted"));
      div.appendChild(heatmapTable(s.latency));
      const cols = s.latency.columns;
      div.appendChild(el("p", cols.length + (cols.length === 1 ? " column" : " columns") + ", from the interval ending " + fmtTime(cols[0].end) + " to the one ending now", "muted"));
    } else {
      div.appendChild(el("p", "No delivery yet.", "muted"));
    }
    box.appendChild(div);
  }
}

// ---- event types (the Discovery API) --------------------------------------

async function loadTypes() {
  const d = await apiJSON("/discovery");
  $("#types-summary").textContent = d.types.length + " types" + (d.untrackedevents ? ", " + d.untrackedevents + " events of types not listed" : "");
  const tb = tbody("#types-table", true);
  for (const t of d.types) {
    const tr = row([t.source, t.type, t.count, fmtTime(t.firstseen), fmtTime(t.lastseen)],
      () => showDetail({ event: t.example || {} }));
    tr.dataset.type = t.type;
    numeric("#types-table", tr);
    tb.appendChild(tr);
  }
}

// ---- routing ---------------------------------------------------------------

const views = {
  topics: { load: loadTopics, every: 5000 },
  tail: { load: async () => { if (!tailAbort) startTail(); } },
  events: { load: () => loadEvents() },
  deadletters: { load: loadDeadLetters },
  subscriptions: { load: loadSubscriptions, every: 5000 },
  types: { load: loadTypes, every: 10000 },
};

function route() {
  const name = (location.hash || "#topics").slice(1);
  const v = views[name] ? name : "topics";
  if (v !== "tail") stopTail();
  clearInterval(refreshTimer);
  $("#detail").hidden = true;
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + v;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === v);
  $("#logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  setStatus("");
  const load = () => views[v].load().then(() => { document.body.dataset.loaded = v; }).catch(fail);
  load();
  if (views[v].every) refreshTimer = setInterval(load, views[v].every);
}

window.addEventListener("hashchange", route);
route();
