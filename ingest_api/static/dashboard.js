"use strict";
// The BuyIt seller dashboard. Live stock comes from /api/inventory/stream (Server-Sent Events read with
// fetch(), since EventSource cannot send an Authorization header); sales per minute, pace and stock-out
// from /api/analytics/windows. Everything is written with textContent: product names are seller input.

const TOKEN_KEY = "buyit.token";
const CHART_MINUTES = 30;
const POLL_MS = 5000;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

let token = null;
let isAdmin = false;
let seller = null;        // the seller shown; null for a seller itself (the API knows who it is)
let streamAbort = null;
let pollTimer = null;
let refreshSoon = null;
const stock = new Map();  // productId -> the newest stock event
const paces = new Map();  // productId -> {unitsPerMinute, stockOutAt}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

function setStatus(state, text) { const s = $("status"); s.dataset.state = state; s.textContent = text; }

// A link may carry the token in its fragment (#token=...): the fragment never reaches a server or its
// logs. Keep it in this tab's sessionStorage and take it out of the address bar and history.
function takeTokenFromFragment() {
  const found = location.hash.match(/[#&]token=([^&]+)/);
  if (found) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(found[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function authorized(extra) { return { headers: { Authorization: "Bearer " + token, ...(extra || {}) }, cache: "no-store" }; }

async function getJson(path) {
  const r = await fetch(path, authorized());
  if (r.status === 401) { signOut("The token was refused (expired?). Sign in again."); throw new Error("unauthorized"); }
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function showSignIn(message) {
  $("board").hidden = true; $("sign-out").hidden = true; $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  setStatus("idle", "not connected");
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  stopWatching();
  showSignIn(message);
}

function stopWatching() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
  clearInterval(pollTimer);
  stock.clear(); paces.clear();
  $("stock").tBodies[0].replaceChildren();
}

async function start() {
  takeTokenFromFragment();
  token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return showSignIn();
  // Who is this? An admin may list the sellers; a seller is refused that and reads its own figures.
  let r;
  try { r = await fetch("/api/analytics/sellers", authorized()); } catch (e) { return showSignIn("The API is not reachable."); }
  if (r.status === 401) return signOut("The token was refused (expired?). Sign in again.");
  $("sign-in").hidden = true; $("board").hidden = false; $("sign-out").hidden = false;
  if (r.ok) {
    isAdmin = true;
    $("who").textContent = "admin";
    $("admin").hidden = false; $("funnel-section").hidden = false;
    const picker = $("seller-picker");
    picker.replaceChildren(...(await r.json()).sellers.map((id) => new Option(id, id)));
    picker.onchange = () => watch(picker.value);
    if (picker.value) watch(picker.value); else setStatus("idle", "no sellers yet");
    return;
  }
  const mine = await fetch("/api/analytics/windows", authorized());
  if (!mine.ok) return signOut("This page needs a SELLER or ADMIN token.");
  $("who").textContent = "seller " + (await mine.json()).sellerId;
  watch(null);
}

function watch(sellerId) {
  stopWatching();
  seller = sellerId;
  stream();
  refresh();
  pollTimer = setInterval(refresh, POLL_MS);
}

async function stream() {
  const control = new AbortController();
  streamAbort = control;
  const url = "/api/inventory/stream" + (seller ? "?sellerId=" + encodeURIComponent(seller) : "");
  while (!control.signal.aborted) {
    try {
      const r = await fetch(url, { ...authorized({ Accept: "text/event-stream" }), signal: control.signal });
      if (r.status === 401) return signOut("The token was refused (expired?). Sign in again.");
      if (!r.ok) throw new Error("stream answered " + r.status);
      setStatus("live", "live");
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      if (control.signal.aborted) return;
    }
    setStatus("error", "reconnecting…");  // the server ends a stream after an hour, or on a restart
    await sleep(2000);
  }
}

function onFrame(frame) {
  let kind = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (kind === "stock" && data.length) onStock(JSON.parse(data.join("\n")));
}

function onStock(s) {
  const before = stock.get(s.productId);
  stock.set(s.productId, s);
  renderRow(s);
  if (before && before.soldQuantity !== s.soldQuantity) {  // a sale: fetch the minute's figures now
    clearTimeout(refreshSoon);
    refreshSoon = setTimeout(refresh, 300);
  }
}

function cell(row, name) {
  let td = row.querySelector("td." + name);
  if (!td) { td = document.createElement("td"); td.className = name; row.appendChild(td); }
  return td;
}

function renderRow(s) {
  const body = $("stock").tBodies[0];
  let row = body.querySelector(`tr[data-product-id="${CSS.escape(s.productId)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.productId = s.productId;
    ["name", "available", "reserved", "allocated", "sold", "pace", "stockout"].forEach((n) => cell(row, n));
    body.appendChild(row);
  }
  cell(row, "name").textContent = s.name || s.sku;
  cell(row, "available").textContent = s.availableQuantity;
  cell(row, "reserved").textContent = s.reservedQuantity;
  cell(row, "allocated").textContent = s.allocatedQuantity;
  cell(row, "sold").textContent = s.soldQuantity;
  row.classList.toggle("low", s.availableQuantity <= s.lowStockThreshold);
  row.dataset.low = String(s.availableQuantity <= s.lowStockThreshold);
  renderPace(row, s.productId);
}

function renderPace(row, productId) {
  const p = paces.get(productId);
  const s = stock.get(productId);
  cell(row, "pace").textContent = p ? p.unitsPerMinute.toFixed(2) : "–";
  let out = "–";
  if (s && s.availableQuantity <= 0) out = "sold out";
  else if (p && p.stockOutAt) {
    const minutes = (Date.parse(p.stockOutAt) - Date.now()) / 60000;
    out = minutes < 90 ? `in ${Math.max(1, Math.round(minutes))} min` : new Date(p.stockOutAt).toLocaleString();
  }
  cell(row, "stockout").textContent = out;
}

async function refresh() {
  const since = new Date(Date.now() - CHART_MINUTES * 60000).toISOString();
  const query = new URLSearchParams({ since });
  if (seller) query.set("sellerId", seller);
  try {
    const figures = await getJson("/api/analytics/windows?" + query);
    for (const p of figures.products || []) paces.set(p.productId, p);
    for (const row of $("stock").tBodies[0].rows) renderPace(row, row.dataset.productId);
    drawChart(figures.minutes);
    if (isAdmin) drawFunnel(await getJson("/api/analytics/windows/funnel"));
  } catch (e) { /* the next poll tries again; the stream's status shows trouble */ }
}

function drawChart(minutes) {
  const svg = $("sales-chart");
  const width = 720, height = 200, pad = 24;
  const now = Math.floor(Date.now() / 60000);
  const units = new Array(CHART_MINUTES).fill(0);
  for (const m of minutes) {
    const slot = CHART_MINUTES - 1 - (now - Math.floor(Date.parse(m.windowStart) / 60000));
    if (slot >= 0 && slot < CHART_MINUTES) units[slot] += m.unitsSold;
  }
  const top = Math.max(1, ...units);
  const step = (width - 2 * pad) / CHART_MINUTES;
  const shapes = [];
  const make = (tag, attrs, text) => {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    shapes.push(el);
  };
  make("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" });
  units.forEach((u, i) => {
    const h = (u / top) * (height - 2 * pad);
    make("rect", { x: pad + i * step + 1, y: height - pad - h, width: Math.max(1, step - 2), height: h, class: "bar",
                   "data-units": u });
  });
  make("text", { x: 2, y: pad }, String(top));
  make("text", { x: pad, y: height - 6 }, `-${CHART_MINUTES} min`);
  make("text", { x: width - pad - 24, y: height - 6 }, "now");
  svg.replaceChildren(...shapes);
  const total = units.reduce((a, b) => a + b, 0);
  svg.dataset.total = String(total);
  $("sales-total").textContent = `${total} units sold in the last ${CHART_MINUTES} minutes`;
}

function drawFunnel(funnel) {
  const sums = { cartsStarted: 0, itemsAdded: 0, checkouts: 0, paid: 0, abandoned: 0 };
  for (const m of funnel.minutes) for (const k of Object.keys(sums)) sums[k] += m[k];
  const labels = { cartsStarted: "carts started", itemsAdded: "items added", checkouts: "checkouts", paid: "paid",
                   abandoned: "abandoned" };
  $("funnel").tBodies[0].replaceChildren(...Object.entries(sums).map(([k, v]) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td"); name.textContent = labels[k];
    const n = document.createElement("td"); n.textContent = v; n.className = k;
    tr.append(name, n);
    return tr;
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-button").onclick = () => {
    const pasted = $("token").value.trim().replace(/^Bearer\s+/i, "");
    if (!pasted) return;
    sessionStorage.setItem(TOKEN_KEY, pasted);
    $("token").value = "";
    start();
  };
  $("sign-out").onclick = () => signOut();
  window.addEventListener("hashchange", start);
  start();
});
