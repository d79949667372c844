// The statepump console: read-only views of one sidecar, no framework, no build step, no network
// beyond the sidecar itself (every URL is relative, so it works through a port-forward too).
"use strict";

const $ = (selector) => document.querySelector(selector);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};
const json = (value) => JSON.stringify(value);
const short = (value, n = 120) => { const t = json(value); return t.length > n ? t.slice(0, n) + "…" : t; };
const encodePath = (path) => encodeURIComponent(path).replace(/%2F/g, "/");

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// ------------------------------------------------------------------ views

let current = "status";
function show(view) {
  current = view;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.view === view);
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== `view-${view}`;
  if (view === "state" && !$("#tree").children.length) loadRoot();
  if (view === "history") loadHistory();
  if (view === "problems") loadProblems();
}
for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => show(b.dataset.view));

// ------------------------------------------------------------------ status and chart

const WINDOW = 300; // seconds shown
const samples = []; // {t, lag, rate}
let previous = null;

function card(label, value, id) {
  return el("div", { class: "card", id: `card-${id}` }, el("div", { class: "label" }, label),
    el("div", { class: "value" }, value === null || value === undefined ? "–" : String(value)));
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "none";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function renderStatus(s) {
  const badge = $("#readiness");
  badge.textContent = s.ready ? "ready" : `not ready: ${s.not_ready_reason || s.phase || "?"}`;
  badge.className = "badge " + (s.ready ? "ready" : "not-ready");
  const from = [`hub ${s.events_from_hub}`, `capture ${s.events_from_capture}`];
  if (s.events_from_relay) from.push(`relay ${s.events_from_relay}`);
  $("#cards").replaceChildren(
    card("readiness", s.ready ? "ready" : s.not_ready_reason || s.phase, "ready"),
    card("sequence", s.sequence, "sequence"),
    card("lag", `${s.lag_events ?? "–"} events / ${s.lag_seconds === null ? "–" : s.lag_seconds.toFixed(1) + " s"}`, "lag"),
    card("applied, by source", from.join(", "), "sources"),
    card("reconnects", s.reconnects, "reconnects"),
    card("poison events", s.poison_events + (s.last_poison_event !== null ? ` (last ${s.last_poison_event})` : ""), "poison"),
    card("rejected events", (s.events_rejected ?? 0) + (s.last_rejected_event ? ` (last ${s.last_rejected_event.sequence})` : ""), "rejected"),
    card("snapshot", s.snapshot_sequence === null ? "none" : `${s.snapshot_sequence}, ${age(s.snapshot_age_seconds)} old`, "snapshot"),
    card("history kept", s.history && s.history.oldest !== null ? `${s.history.oldest}..${s.history.newest}` : "none", "history"),
    card("reducer", `${s.reducer.name}@${s.reducer.version}`, "reducer"),
  );
}

function sample(s) {
  const now = performance.now() / 1000;
  let rate = 0;
  if (previous) rate = Math.max(0, (s.events_applied - previous.applied) / Math.max(1e-3, now - previous.t));
  previous = { t: now, applied: s.events_applied, sequence: s.sequence };
  samples.push({ t: now, lag: s.lag_events || 0, rate });
  while (samples.length && samples[0].t < now - WINDOW) samples.shift();
  drawChart();
}

function drawChart() {
  const svg = $("#chart");
  const W = 720, H = 200, left = 44, right = 44, top = 10, bottom = 24;
  const ns = "http://www.w3.org/2000/svg";
  const now = samples.length ? samples[samples.length - 1].t : 0;
  const maxLag = Math.max(1, ...samples.map((p) => p.lag));
  const maxRate = Math.max(1, ...samples.map((p) => p.rate));
  // The window grows with the data to its 5 minutes, so a fresh page shows a line, not a spike at the edge.
  const span = samples.length ? Math.min(WINDOW, Math.max(10, now - samples[0].t)) : WINDOW;
  const x = (t) => left + (W - left - right) * (1 - (now - t) / span);
  const y = (v, max) => top + (H - top - bottom) * (1 - v / max);
  const line = (cls, pick, max) => {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("class", cls);
    path.setAttribute("points", samples.map((p) => `${x(p.t).toFixed(1)},${y(pick(p), max).toFixed(1)}`).join(" "));
    return path;
  };
  const text = (tx, ty, value, anchor) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", tx); t.setAttribute("y", ty); t.setAttribute("text-anchor", anchor); t.textContent = value;
    return t;
  };
  const grid = [0, 0.5, 1].map((f) => {
    const g = document.createElementNS(ns, "line");
    g.setAttribute("class", "grid"); g.setAttribute("x1", left); g.setAttribute("x2", W - right);
    g.setAttribute("y1", top + (H - top - bottom) * f); g.setAttribute("y2", top + (H - top - bottom) * f);
    return g;
  });
  svg.replaceChildren(...grid,
    text(left - 4, top + 8, String(maxLag), "end"), text(left - 4, H - bottom, "0", "end"),
    text(W - right + 4, top + 8, maxRate.toFixed(0), "start"), text(W - right + 4, H - bottom, "0", "start"),
    text(left, H - 6, span >= WINDOW ? "-5 min" : `-${Math.round(span)} s`, "start"), text(W - right, H - 6, "now", "end"),
    line("lag", (p) => p.lag, maxLag), line("rate", (p) => p.rate, maxRate));
  svg.dataset.points = String(samples.length);
  svg.dataset.lastRate = samples.length ? samples[samples.length - 1].rate.toFixed(2) : "0";
}

let lastSequence = null;
function connect() {
  // The status stream: one Server-Sent Event a second; EventSource reconnects by itself.
  const stream = new EventSource("/ui/stream");
  stream.addEventListener("status", (e) => {
    const s = JSON.parse(e.data);
    $("#live").textContent = `live · sequence ${s.sequence}`;
    renderStatus(s);
    sample(s);
    if (lastSequence !== null && s.sequence !== lastSequence) {
      if (current === "history") loadHistory();
      if (current === "problems") loadProblems();
    }
    lastSequence = s.sequence;
  });
  stream.onerror = () => { $("#live").textContent = "reconnecting…"; };
}

// ------------------------------------------------------------------ state browser

const PAGE = 200;
function childItem(parent, child) {
  const path = parent ? `${parent}/${child.key}` : child.key;
  if (child.kind === "value") {
    return el("li", { "data-path": path }, el("span", { class: "key" }, child.key), ": ",
      el("span", { class: "leaf" }, short(child.value)));
  }
  const li = el("li", { "data-path": path, class: "branch" });
  const label = el("span", { class: "node" }, el("span", { class: "key" }, child.key), " ",
    el("span", { class: "meta" }, `${child.kind}, ${child.size}`));
  label.addEventListener("click", () => toggle(li, path));
  li.append(label);
  return li;
}

async function loadChildren(list, path, offset = 0, prefix = "", cursor = null) {
  const started = performance.now();
  let url = `/v1/children?path=${encodePath(path)}&limit=${PAGE}`;
  url += cursor === null ? `&offset=${offset}` : `&cursor=${cursor}`;
  if (prefix) url += `&prefix=${encodeURIComponent(prefix)}`;
  const page = await getJSON(url);
  for (const child of page.children) list.append(childItem(path, child));
  const shown = list.querySelectorAll(":scope > li[data-path]").length;
  // A large map is paged by cursor in its own order, a small one by offset in key order.
  const nextCursor = page.next_cursor ?? null, nextOffset = page.next_offset ?? null;
  if (nextCursor !== null || nextOffset !== null) {
    const more = el("li", {}, el("button", { class: "more" }, `more (${page.total - shown} left)`));
    more.firstChild.addEventListener("click", () => {
      more.remove();
      loadChildren(list, path, nextOffset ?? 0, prefix, nextCursor);
    });
    list.append(more);
  }
  list.dataset.loadMs = (performance.now() - started).toFixed(1);
  return page;
}

async function toggle(li, path) {
  const open = li.classList.toggle("open");
  let sub = li.querySelector(":scope > ul");
  if (!open) { if (sub) sub.hidden = true; return; }
  if (sub) { sub.hidden = false; return; }
  sub = el("ul");
  li.append(sub);
  await loadChildren(sub, path);
  li.dataset.loaded = "true";
}

async function loadRoot() {
  const tree = $("#tree");
  tree.replaceChildren();
  const page = await loadChildren(tree, "");
  $("#search-note").textContent = `${page.total} top-level keys${page.sorted ? "" : " (in the map's own order; search by prefix)"}`;
}

$("#search").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("#search-path").value.trim();
  const cut = text.lastIndexOf("/");
  const parent = cut < 0 ? "" : text.slice(0, cut), prefix = cut < 0 ? text : text.slice(cut + 1);
  const tree = $("#tree");
  tree.replaceChildren();
  try {
    const page = await loadChildren(tree, parent, 0, prefix);
    $("#search-note").textContent = `${page.total} match${page.total === 1 ? "" : "es"} under ${parent || "/"}`;
  } catch (error) { $("#search-note").textContent = error.message; }
});

// ------------------------------------------------------------------ history and problems

const describeOps = (ops) => ops === null ? "(body is not JSON)" : ops.map((op) =>
  `${op.op} ${Array.isArray(op.path) ? op.path.join("/") : op.path}${"value" in op ? " = " + short(op.value, 60) : ""}`).join("; ");

function entryRow(entry, withReason) {
  const row = el("tr", { class: `entry ${entry.outcome}`, "data-sequence": entry.sequence },
    el("td", {}, String(entry.sequence)), el("td", {}, entry.enqueued_time.replace("T", " ").slice(0, 23)));
  if (withReason) row.append(el("td", { class: "outcome" }, entry.outcome), el("td", { class: "reason" }, entry.reason || ""));
  else row.append(el("td", {}, entry.author || "–"), el("td", { class: "outcome" }, entry.outcome));
  row.append(el("td", { class: "ops" }, describeOps(entry.operations)));
  row.addEventListener("click", () => showDiff(row, entry));
  return row;
}

async function showDiff(row, entry) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("diff-row")) { next.remove(); return; }
  const cell = el("td", { colspan: "5" });
  row.after(el("tr", { class: "diff-row", "data-sequence": entry.sequence }, cell));
  try {
    const d = await getJSON(`/v1/diff?from=${entry.sequence - 1}&to=${entry.sequence}`);
    const list = el("ul", { class: "diff" });
    for (const c of d.changes) {
      const text = c.kind === "added" ? `+ ${c.path}: ${short(c.new, 200)}`
        : c.kind === "removed" ? `- ${c.path}: ${short(c.old, 200)}` : `~ ${c.path}: ${short(c.old, 100)} → ${short(c.new, 100)}`;
      list.append(el("li", { class: c.kind }, text));
    }
    if (!d.changes.length) list.append(el("li", { class: "muted" }, "no change (the event changed nothing)"));
    cell.append(list);
  } catch (error) { cell.append(el("span", { class: "muted" }, error.message)); }
}

async function loadHistory() {
  const path = $("#history-path").value.trim();
  try {
    const page = await getJSON(`/v1/history?path=${encodePath(path)}&limit=100`);
    const body0 = $("#history tbody");
    const top = page.entries.length ? String(page.entries[0].sequence) : "";
    if (body0.dataset.path === path && body0.dataset.top === top) return; // nothing new: keep the rows (and open diffs)
    body0.dataset.path = path;
    body0.dataset.top = top;
    const open = new Set([...document.querySelectorAll("#history tr.diff-row")].map((r) => r.dataset.sequence));
    const body = $("#history tbody");
    body.replaceChildren(...page.entries.map((e) => entryRow(e, false)));
    for (const row of body.querySelectorAll("tr.entry")) {
      if (open.has(row.dataset.sequence)) row.click();
    }
    $("#history-note").textContent = page.oldest === null ? "nothing kept yet" : `kept: ${page.oldest}..${page.newest}`;
  } catch (error) { $("#history-note").textContent = error.message; }
}
$("#history-form").addEventListener("submit", (e) => { e.preventDefault(); loadHistory(); });

async function loadProblems() {
  const found = [];
  let before = null;
  for (let pages = 0; pages < 10; pages++) {
    const page = await getJSON(`/v1/history?limit=1000${before === null ? "" : `&before=${before}`}`);
    found.push(...page.entries.filter((e) => e.outcome !== "applied"));
    if (!page.more) break;
    before = page.next_before;
  }
  $("#problems tbody").replaceChildren(...found.slice(0, 200).map((e) => entryRow(e, true)));
}

connect();
