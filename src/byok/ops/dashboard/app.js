"use strict";
// The byok dashboard: plain script, no framework, no build step. It polls the
// admin API on its own origin (the session cookie rides along) and updates the
// tables in place, so that rows, and the button under the pointer, survive
// every poll. Data only ever reaches the DOM as text (textContent, Text nodes).

const KEYS_EVERY = 1000; // ms: key health changes within seconds (cooldowns)
const STATS_EVERY = 5000; // ms: the server's rate buckets are 5 s wide
const USAGE_EVERY = 5000; // ms: each poll has the server write its latest usage first
const TICK = 100; // ms: countdowns run locally between polls
// The CSRF header: the server refuses cookie-authenticated requests without it,
// which a cross-site form or image cannot add.
const HEADERS = { "x-byok-csrf": "1" };
const COLUMNS = ["Key", "Fingerprint", "State", "Back in", "Reason", "Picks", "OK",
  "Failed", "In flight", "Latency", "Tokens in / out", ""];

const $ = (id) => document.getElementById(id);
const rows = new Map(); // row id -> cells of one key under one target
const problems = new Map(); // what failed -> message, for the banner
let layout = ""; // models/targets/keys signature: tables are rebuilt only when it changes
let issued = 0; // sequence numbers of /admin/keys polls, so that a slow,
let shown = 0; //   older answer never overwrites a newer one (after a click)
let clock = null; // server time at the last keys answer, for the rate window
let usageIssued = 0; // as issued/shown, for /admin/usage: a change of period or
let usageShown = 0; //   grouping must not be overwritten by an older answer
let usageLayout = ""; // what the usage table shows: rebuilt only when it changes
let leaving = false;

// A node whose text and attributes come from data, safely: strings become Text nodes.
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  node.append(...children);
  return node;
}

async function request(url, init = {}) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: HEADERS, ...init });
  if (response.status === 401) {
    // Session gone (expired, signed out, server restarted): /dashboard shows the sign-in form.
    if (!leaving) {
      leaving = true;
      location.assign("/dashboard");
    }
    throw new Error("signed out");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error((body && body.error && body.error.message) || `HTTP ${response.status}`);
  }
  return body;
}

function report(what, error) {
  if (error) problems.set(what, `${what}: ${error.message}`);
  else problems.delete(what);
  const note = $("poll-note");
  note.textContent = problems.size ? [...problems.values()].join(" · ") : "";
  note.hidden = problems.size === 0;
}

async function refreshKeys() {
  const seq = ++issued;
  try {
    const data = await request("/admin/keys");
    if (seq < shown) return;
    shown = seq;
    clock = { now: data.now, at: performance.now() };
    renderKeys(data);
    $("last-poll").textContent = new Date().toLocaleTimeString();
    report("polling /admin/keys failed (retrying)", null);
  } catch (error) {
    report("polling /admin/keys failed (retrying)", error);
  }
}

async function refreshStats() {
  try {
    renderStats(await request("/admin/stats"));
    report("polling /admin/stats failed (retrying)", null);
  } catch (error) {
    report("polling /admin/stats failed (retrying)", error);
  }
}

async function act(action, provider, label) {
  const url = `/admin/keys/${encodeURIComponent(label)}/${action}?provider=${encodeURIComponent(provider)}`;
  try {
    await request(url, { method: "POST" });
    report("last action failed", null);
  } catch (error) {
    report("last action failed", new Error(`${action} ${provider}/${label}: ${error.message}`));
  }
  await refreshKeys(); // at once: the next pick already sees the change
}

function renderKeys(data) {
  $("generation").textContent = String(data.config.generation);
  $("source").textContent = data.config.source;
  $("source").title = `loaded ${new Date(data.config.loaded_at * 1000).toLocaleString()}`;
  const flat = [];
  for (const model of data.models) {
    for (const target of model.targets) for (const key of target.keys) flat.push([model, target, key]);
  }
  const signature = JSON.stringify(flat.map(([m, t, k]) =>
    [m.name, m.strategy, m.fallbacks, t.provider, t.model, k.provider, k.label, k.fingerprint]));
  if (signature !== layout) {
    build(data.models);
    layout = signature;
  }
  const at = performance.now();
  for (const [model, target, key] of flat) update(rows.get(rowId(model, target, key)), key, at);
  tick();
}

const rowId = (model, target, key) => JSON.stringify([model.name, target.provider, target.model, key.provider, key.label]);

function build(models) {
  rows.clear();
  const sections = models.map((model) => {
    const about = [model.passthrough ? "passthrough" : model.strategy];
    if (model.fallbacks && model.fallbacks.length) about.push(`fallbacks: ${model.fallbacks.join(", ")}`);
    return el("section", { class: "model" }, [
      el("h2", {}, [model.name, el("span", { class: "muted", text: about.join(" · ") })]),
      ...model.targets.map((target) => table(model, target)),
    ]);
  });
  if (!sections.length) sections.push(el("p", { class: "muted", text: "No models configured." }));
  $("models").replaceChildren(...sections);
}

function table(model, target) {
  return el("table", {}, [
    el("caption", {}, [`${target.provider}/${target.model}`, el("span", { class: "muted", text: target.kind })]),
    el("thead", {}, [el("tr", {}, COLUMNS.map((name, i) => el("th", { text: name, class: i === 3 || i > 4 && i < 11 ? "num" : "" })))]),
    el("tbody", {}, target.keys.map((key) => row(model, target, key))),
  ]);
}

function row(model, target, key) {
  const num = () => el("td", { class: "num" });
  const button = (action, text) => el("button", {
    type: "button", text, "data-action": action, onclick: () => act(action, key.provider, key.label),
  });
  const cells = {
    state: el("span", { class: "state" }),
    countdown: el("td", { class: "countdown num" }),
    reason: el("td", { class: "reason" }),
    picks: num(), successes: num(), failures: num(), inflight: num(), latency: num(), tokens: num(),
    disable: button("disable", "Disable"),
    enable: button("enable", "Enable"),
    restore: button("restore", "Restore"),
    deadline: 0, // performance.now() at which the cooldown ends; 0 when not cooling
  };
  cells.tr = el("tr", { "data-key": `${key.provider}/${key.label}`, "data-target": `${target.provider}/${target.model}` }, [
    el("td", { class: "label", text: key.label, title: key.label }),
    el("td", { class: "fingerprint", text: key.fingerprint }),
    el("td", {}, [cells.state]),
    cells.countdown, cells.reason, cells.picks, cells.successes, cells.failures,
    cells.inflight, cells.latency, cells.tokens,
    el("td", { class: "actions" }, [cells.disable, cells.enable, cells.restore]),
  ]);
  rows.set(rowId(model, target, key), cells);
  return cells.tr;
}

const count = (n) => (n == null ? "–" : Number(n).toLocaleString());
// Loopback and cached answers take well under a millisecond: keep a decimal there.
const latency = (ms) => (ms == null ? "–" : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`);

function update(cells, key, at) {
  cells.tr.dataset.state = key.state;
  cells.state.textContent = key.state;
  cells.state.className = `state badge ${key.state}`;
  // The server's remaining time was true when the answer arrived; count down from then.
  cells.deadline = key.state === "cooldown" ? at + (key.cooldown_remaining || 0) * 1000 : 0;
  showCountdown(cells, performance.now()); // at once, not at the next tick
  const reason = key.state !== "ready" && key.reason ? key.reason : null;
  const parts = reason ? [reason.status ?? "no answer", reason.message] : [];
  if (key.state === "blocked" && key.revalidate_at) {
    parts.push(`next check ${new Date(key.revalidate_at * 1000).toLocaleTimeString()}`);
  }
  if (reason && key.quota) {
    // a subscription's spent window: a 5-hour one resets today, a weekly one another day
    parts.push(`${key.quota.window} window resets ${new Date(key.quota.resets_at * 1000).toLocaleString()}`);
  }
  cells.reason.textContent = parts.filter((x) => x !== "").join(" · ");
  cells.reason.title = reason && reason.at ? `at ${new Date(reason.at * 1000).toLocaleTimeString()}` : "";
  cells.picks.textContent = count(key.picks);
  cells.successes.textContent = count(key.successes);
  cells.failures.textContent = count(key.failures);
  cells.inflight.textContent = count(key.inflight);
  cells.latency.textContent = latency(key.latency_ewma_ms);
  const tokens = key.tokens || {};
  cells.tokens.textContent = `${count(tokens.input)} / ${count(tokens.output)}`;
  // The cell is this target's share; the key's tokens over all its targets, on hover.
  const all = key.key_tokens || {};
  cells.tokens.title = `this key, all targets: ${count(all.input)} / ${count(all.output)}`;
  // Offer only what changes something: enable undoes disable, restore clears any state.
  cells.disable.disabled = key.state === "disabled";
  cells.enable.disabled = key.state !== "disabled";
  cells.restore.disabled = key.state === "ready";
}

function showCountdown(cells, now) {
  cells.countdown.textContent = cells.deadline ? `${(Math.max(0, cells.deadline - now) / 1000).toFixed(1)}s` : "";
}

function tick() {
  const now = performance.now();
  for (const cells of rows.values()) showCountdown(cells, now);
}

function renderStats({ bucket_seconds: width, buckets }) {
  const n = Math.min(buckets.length, Math.ceil(60 / width));
  const recent = buckets.slice(buckets.length - n);
  const sum = (field) => recent.reduce((total, b) => total + b[field], 0);
  // The newest bucket may still be filling: count only its elapsed part (server clock).
  let seconds = n * width;
  if (n && clock) {
    const now = clock.now + (performance.now() - clock.at) / 1000;
    seconds = (n - 1) * width + Math.min(width, Math.max(0, now - recent[n - 1].t));
  }
  const requests = sum("requests");
  $("req-rate").textContent = n ? (requests / Math.max(seconds, 1)).toFixed(2) : "–";
  $("err-rate").textContent = requests ? `${((100 * sum("errors")) / requests).toFixed(1)}%` : "–";
  $("failed-attempts").textContent = n ? count(sum("failed_attempts")) : "–";
  sparkline(buckets, width);
}

function sparkline(buckets, width) {
  const [w, h] = [240, 48];
  const peak = Math.max(1, ...buckets.map((b) => b.requests));
  const step = w / Math.max(1, buckets.length - 1);
  // Errors share the requests' scale, so the gap between the lines is the success share.
  const points = (field) => buckets
    .map((b, i) => `${(i * step).toFixed(1)},${(h - 1 - (b[field] / peak) * (h - 2)).toFixed(1)}`)
    .join(" ");
  $("spark-requests").setAttribute("points", points("requests"));
  $("spark-errors").setAttribute("points", points("errors"));
  $("spark-peak").textContent = `peak ${(peak / width).toFixed(1)} req/s`;
}

// ---- usage: the usage ledger's sums, from /admin/usage ----

const USAGE_HEADINGS = {
  hour: "Hour (UTC)", day: "Day (UTC)", month: "Month", client: "Client", provider: "Provider",
  key: "Key", model: "Model", requests: "Requests", input_tokens: "Input tokens",
  output_tokens: "Output tokens", errors: "Errors", cost: "Cost (USD)",
};
const MEASURES = ["requests", "input_tokens", "output_tokens", "errors", "cost"];

function usageQuery() {
  const params = new URLSearchParams({ by: $("usage-by").value });
  const period = $("usage-period").value;
  // The ledger's days are UTC days; "month" is the server's default period.
  if (period === "today") params.set("since", new Date().toISOString().slice(0, 10));
  else if (period === "7d") params.set("since", "7d");
  return `/admin/usage?${params}`;
}

async function refreshUsage() {
  const seq = ++usageIssued;
  try {
    const data = await request(usageQuery());
    if (seq < usageShown) return;
    usageShown = seq;
    renderUsage(data);
    report("polling /admin/usage failed (retrying)", null);
  } catch (error) {
    report("polling /admin/usage failed (retrying)", error);
  }
}

// Cost with 4 decimals; "-" when no price is configured (nothing to cost).
const cost = (value, priced) => (!priced && !value ? "-"
  : Number(value).toLocaleString(undefined, { minimumFractionDigits: 4, maximumFractionDigits: 4 }));

function renderUsage(data) {
  const note = $("usage-note");
  const empty = data.enabled && !data.rows.length ? "No usage in this period." : "";
  note.textContent = [data.message, empty].filter(Boolean).join(" ");
  note.hidden = !note.textContent;
  const table = $("usage-table");
  table.hidden = !data.enabled || !data.rows.length;
  const signature = JSON.stringify([data.columns, data.rows, data.totals, data.priced]);
  if (table.hidden || signature === usageLayout) return;
  usageLayout = signature;
  const columns = [...data.columns, ...MEASURES];
  const cells = (row) => columns.map((name) => {
    const measure = MEASURES.includes(name);
    const text = !measure ? String(row[name]) : name === "cost" ? cost(row.cost, data.priced) : count(row[name]);
    return el("td", { class: measure ? "num" : "", text, "data-column": name });
  });
  const totals = { ...data.totals };
  for (const name of data.columns) totals[name] = "";
  totals[data.columns[0]] = "Total";
  table.replaceChildren(
    el("thead", {}, [el("tr", {}, columns.map((name) =>
      el("th", { text: USAGE_HEADINGS[name] || name, class: MEASURES.includes(name) ? "num" : "" })))]),
    el("tbody", {}, data.rows.map((row) => el("tr", {}, cells(row)))),
    el("tfoot", {}, [el("tr", { id: "usage-totals" }, cells(totals))]),
  );
}

// Each poll is scheduled after the previous one ends, so a slow server never piles them up.
function every(ms, poll) {
  const run = async () => {
    await poll();
    if (!leaving) setTimeout(run, ms);
  };
  run();
}

async function signOut() {
  try {
    await request("/admin/logout", { method: "POST" });
  } catch (error) {
    // signed out either way: the next page load asks for the key again
  }
  location.assign("/dashboard");
}

$("sign-out").addEventListener("click", signOut);
every(KEYS_EVERY, refreshKeys);
every(STATS_EVERY, refreshStats);
every(USAGE_EVERY, refreshUsage);
$("usage-period").addEventListener("change", refreshUsage);
$("usage-by").addEventListener("change", refreshUsage);
setInterval(tick, TICK);
