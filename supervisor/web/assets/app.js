// fleet dashboard: polls the JSON endpoints and redraws; charts and the graph are SVG drawn here.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const SVG = "http://www.w3.org/2000/svg";
const state = { selected: null, graphFor: null, commit: null, logTask: null, logOffset: -1,
  metric: "cost_usd", usage: null };

function api(path, params) {
  const q = new URLSearchParams(params || {});
  if (TOKEN) q.set("token", TOKEN);
  return fetch(path + "?" + q.toString(), { cache: "no-store" }).then((r) => {
    if (!r.ok) return r.json().then((e) => { throw new Error(e.error || r.statusText); });
    return r.json();
  });
}

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function duration(s) {
  if (s === null || s === undefined || s === 0) return "";
  s = Math.floor(s);
  if (s >= 3600) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  if (s >= 60) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return s + "s";
}

function count(n) { return !n ? "" : n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n); }
function money(x) { return x ? "$" + x.toFixed(x < 1 ? 4 : 2) : ""; }

// -- the task table ---------------------------------------------------------------------------

function drawState(s) {
  document.getElementById("home").textContent = s.home;
  const sup = document.getElementById("supervisor");
  sup.textContent = s.supervisor ? "supervisor running" : "no supervisor";
  sup.className = "pill " + (s.supervisor ? "on" : "off");
  document.getElementById("updated").textContent = "updated " + new Date(s.time * 1000).toLocaleTimeString();
  const banner = document.getElementById("banner");
  banner.hidden = !s.banner;
  banner.textContent = s.banner || "";
  document.getElementById("summary").textContent = s.summary;
  const body = document.querySelector("#tasks tbody");
  body.replaceChildren();
  for (const r of [...s.running, ...s.waiting, ...s.ended]) {
    const tr = el("tr", { "data-id": r.id, "data-status": r.status });
    if (r.id === state.selected) tr.className = "selected";
    const coder = [r.coder, r.model].filter(Boolean).join("/");
    const cells = [r.id, r.status, coder, r.attempt || "", duration(r.elapsed),
      r.idle === null ? "" : duration(r.idle), count(r.tokens_in + r.tokens_out), money(r.cost_usd),
      r.title, r.status === "in_progress" ? "" : r.why];
    cells.forEach((c, i) => {
      const td = el("td", {}, String(c));
      if (i === 1) td.className = "st-" + r.status;
      if (i === 8) { td.className = "title"; td.title = r.title; }
      if (i === 9) { td.className = "why"; td.title = r.why || ""; }
      tr.appendChild(td);
    });
    tr.addEventListener("click", () => select(r.id));
    body.appendChild(tr);
  }
  document.getElementById("tasks-more").textContent =
    s.waiting_more ? s.waiting_more + " more waiting tasks (fleet tasks --all)" : "";
  if (!state.selected && s.running.length) select(s.running[0].id, true);
  if (s.commit !== state.commit) { state.commit = s.commit; refreshGraph(); }
}

function select(id, quiet) {
  state.selected = id;
  for (const tr of document.querySelectorAll("#tasks tbody tr"))
    tr.classList.toggle("selected", tr.dataset.id === id);
  if (state.logTask !== id) {
    state.logTask = id; state.logOffset = -1;
    document.getElementById("log").textContent = "";
    document.getElementById("log-task").textContent = id;
    pollLog();
  }
  if (!quiet || !state.graphFor) refreshGraph();
}

// -- the dependency graph: layers by depth, drawn as SVG ---------------------------------------

function refreshGraph() {
  api("/api/graph", state.selected ? { id: state.selected } : {}).then(drawGraph).catch(() => {});
}

function drawGraph(g) {
  const box = document.getElementById("graph");
  document.getElementById("graph-root").textContent = g.root ? "family of " + g.root : "";
  state.graphFor = g.root;
  if (!g.nodes.length || !g.edges.length) { box.replaceChildren(el("p", { class: "muted" }, "none")); return; }
  const deps = {};
  for (const e of g.edges) (deps[e.from] = deps[e.from] || []).push(e.to);
  const depth = {};
  const seen = new Set();
  function level(id) {
    if (depth[id] !== undefined) return depth[id];
    if (seen.has(id)) return 0;  // a cycle: stop here
    seen.add(id);
    let d = 0;
    for (const t of deps[id] || []) d = Math.max(d, level(t) + 1);
    return (depth[id] = d);
  }
  g.nodes.forEach((n) => level(n.id));
  const layers = [];
  for (const n of g.nodes) (layers[depth[n.id]] = layers[depth[n.id]] || []).push(n);
  const W = 150, H = 34, GX = 40, GY = 14;
  const pos = {};
  layers.forEach((layer, x) => layer.forEach((n, y) => { pos[n.id] = { x: 10 + x * (W + GX), y: 10 + y * (H + GY) }; }));
  const width = 20 + layers.length * (W + GX), height = 20 + Math.max(...layers.map((l) => l.length)) * (H + GY);
  const svg = el("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "graph-svg" });
  const defs = el("svg:defs");
  const marker = el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.appendChild(el("svg:path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa0a6" }));
  defs.appendChild(marker); svg.appendChild(defs);
  for (const e of g.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    // the arrow points from a dependency to what it unblocks
    svg.appendChild(el("svg:line", { x1: b.x + W, y1: b.y + H / 2, x2: a.x, y2: a.y + H / 2,
      stroke: "#9aa0a6", "marker-end": "url(#arrow)", "stroke-dasharray": e.type === "parent-child" ? "4 3" : "" , class: "edge" }));
  }
  const colors = { in_progress: "#d99a00", open: "#2f8f46", blocked: "#c8382e", closed: "#9aa0a6", deferred: "#5b6bbf" };
  for (const n of g.nodes) {
    const p = pos[n.id];
    const node = el("svg:g", { class: "node", "data-id": n.id, "data-status": n.status, transform: `translate(${p.x},${p.y})` });
    node.appendChild(el("svg:rect", { width: W, height: H, rx: 5, fill: "#fff", stroke: colors[n.status] || "#555",
      "stroke-width": n.id === g.root ? 3 : 1.5 }));
    node.appendChild(el("svg:text", { x: 6, y: 14, fill: colors[n.status] || "#555" }, n.id + " " + n.status));
    node.appendChild(el("svg:text", { x: 6, y: 27 }, n.title.length > 22 ? n.title.slice(0, 21) + "…" : n.title));
    node.appendChild(el("svg:title", {}, n.id + ": " + n.title));
    node.addEventListener("click", () => select(n.id));
    svg.appendChild(node);
  }
  box.replaceChildren(svg);
}

// -- the live log of the selected task ----------------------------------------------------------

function pollLog() {
  const id = state.logTask;
  if (!id) return;
  api("/api/log", { id, offset: state.logOffset }).then((r) => {
    if (state.logTask !== id) return;
    const pre = document.getElementById("log");
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (state.logOffset < 0) pre.textContent = r.text; else if (r.text) pre.textContent += r.text;
    if (pre.textContent.length > 200000) pre.textContent = pre.textContent.slice(-150000);
    state.logOffset = r.offset;
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }).catch(() => {});
}

// -- usage plots and budgets --------------------------------------------------------------------

function barChart(target, rows, metric, vertical) {
  const box = document.getElementById(target);
  if (!rows.length) { box.replaceChildren(el("p", { class: "muted" }, "none")); return; }
  const values = rows.map((r) => r[metric]);
  const max = Math.max(...values, 1e-9);
  const fmt = metric === "cost_usd" ? money : count;
  let svg;
  if (vertical) {
    const W = 260, H = 140, bw = Math.max(4, Math.min(28, (W - 20) / rows.length - 4));
    svg = el("svg:svg", { width: W, height: H + 30, class: "plot", "data-kind": "day" });
    rows.forEach((r, i) => {
      const h = Math.max(1, (r[metric] / max) * H);
      const x = 10 + i * (bw + 4);
      const rect = el("svg:rect", { class: "bar", x, y: H - h + 10, width: bw, height: h, "data-key": r.key, "data-value": r[metric] });
      rect.appendChild(el("svg:title", {}, r.key + ": " + fmt(r[metric])));
      svg.appendChild(rect);
    });
    svg.appendChild(el("svg:text", { x: 10, y: H + 24 }, rows[0].key));
    if (rows.length > 1) svg.appendChild(el("svg:text", { x: 10 + rows.length * (bw + 4) - 4, y: H + 24, "text-anchor": "end" }, rows[rows.length - 1].key));
  } else {
    const shown = rows.slice(0, 8), W = 260, bh = 16;
    svg = el("svg:svg", { width: W, height: shown.length * (bh + 4) + 4, class: "plot" });
    shown.forEach((r, i) => {
      const w = Math.max(1, (r[metric] / max) * (W - 150));
      const y = 2 + i * (bh + 4);
      svg.appendChild(el("svg:text", { x: 0, y: y + 12 }, r.key.length > 14 ? r.key.slice(0, 13) + "…" : r.key));
      const rect = el("svg:rect", { class: "bar", x: 90, y, width: w, height: bh, "data-key": r.key, "data-value": r[metric] });
      rect.appendChild(el("svg:title", {}, r.key + ": " + fmt(r[metric])));
      svg.appendChild(rect);
      svg.appendChild(el("svg:text", { x: 94 + w, y: y + 12 }, fmt(r[metric]) || "0"));
    });
  }
  box.replaceChildren(svg);
}

function drawUsage() {
  const u = state.usage;
  if (!u) return;
  barChart("usage-day", u.usage.day, state.metric, true);
  barChart("usage-role", u.usage.role, state.metric, false);
  barChart("usage-model", u.usage.model, state.metric, false);
  barChart("usage-account", u.usage.account, state.metric, false);
  const box = document.getElementById("budgets");
  if (!u.budgets.length) { box.replaceChildren(el("p", { class: "muted" }, "none")); return; }
  const table = el("table");
  for (const b of u.budgets) {
    const tr = el("tr", { "data-scope": b.scope });
    const fmt = b.kind === "cost_usd" ? money : count;
    tr.appendChild(el("td", {}, b.scope + " " + (b.kind === "cost_usd" ? "cost" : "tokens")));
    const meter = el("div", { class: "meter" });
    const fill = el("div", { class: b.share >= 0.9 ? "hot" : "" });
    fill.style.width = Math.min(100, (b.share || 0) * 100) + "%";
    meter.appendChild(fill);
    const td = el("td"); td.style.width = "50%"; td.appendChild(meter); tr.appendChild(td);
    tr.appendChild(el("td", {}, (fmt(b.spent) || "0") + " of " + fmt(b.ceiling)));
    table.appendChild(tr);
  }
  box.replaceChildren(table);
}

function refreshUsage() {
  api("/api/usage").then((u) => { state.usage = u; drawUsage(); }).catch(() => {});
}

// -- merge queue and gates ----------------------------------------------------------------------

function listTable(target, rows, columns) {
  const box = document.getElementById(target);
  if (!rows.length) { box.replaceChildren(el("p", { class: "muted" }, "none")); return; }
  const table = el("table");
  const head = el("tr");
  columns.forEach(([title]) => head.appendChild(el("th", {}, title)));
  table.appendChild(head);
  for (const r of rows) {
    const tr = el("tr", { "data-id": r.id });
    columns.forEach(([, get]) => tr.appendChild(el("td", {}, String(get(r) ?? ""))));
    table.appendChild(tr);
  }
  box.replaceChildren(table);
}

function refreshMerge() {
  api("/api/merge").then((m) => {
    listTable("merge", m.merge_queue, [["ID", (r) => r.id], ["STATE", (r) => r.state],
      ["BRANCH", (r) => r.branch], ["QUEUED", (r) => r.queued_at.slice(0, 19)], ["WHY", (r) => r.reason]]);
    listTable("gates", m.gates, [["ID", (r) => r.id], ["TITLE", (r) => r.title],
      ["WAITS FOR", (r) => r.rejected ? "rejected: " + r.reason : r.waiting_for.join(", ")],
      ["CLOSED", (r) => String(r.closed_at).slice(0, 19)]]);
  }).catch(() => {});
}

// -- the loop -----------------------------------------------------------------------------------

function refreshState() {
  api("/api/state").then(drawState).catch((e) => {
    document.getElementById("updated").textContent = "disconnected: " + e.message;
  });
}

for (const radio of document.querySelectorAll("input[name=metric]"))
  radio.addEventListener("change", (e) => { state.metric = e.target.value; drawUsage(); });

refreshState(); refreshUsage(); refreshMerge();
setInterval(refreshState, 1000);
setInterval(pollLog, 1000);
setInterval(refreshUsage, 5000);
setInterval(refreshMerge, 5000);
