// StreamForge live dashboard: the queue list from GET /queues (refreshed), the
// selected queue live from GET /queues/{id}/watch (Server-Sent Events; the
// browser's EventSource reconnects by itself and resumes with Last-Event-ID).
// No framework, no build step; every value is inserted as text, never as HTML.
"use strict";

const LIST_REFRESH_MS = 5000;
const TERMINAL = new Set(["finished", "stopped", "error"]);
const $ = (id) => document.getElementById(id);

const state = {
  cfg: { start: "", stop: "", status: "" }, selected: null, queue: null, source: null, timer: null,
  pages: 1,  // pages of the list shown: "Older queues" adds one, each followed by its cursor
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const pct = (fraction) => Math.round((fraction || 0) * 100);
const count = (n) => (n || 0).toLocaleString("en-US");

function setBar(bar, fraction, label) {
  const value = pct(fraction);
  bar.setAttribute("aria-valuenow", String(value));
  bar.setAttribute("aria-valuetext", `${value}%${label ? ", " + label : ""}`);
  bar.firstElementChild.style.width = value + "%";
}

function badge(node, status) {
  node.textContent = status;
  node.className = "badge status-" + status;
}

function announce(text) {
  const line = el("p", { text });
  $("announcer").append(line);
  while ($("announcer").childElementCount > 5) $("announcer").firstElementChild.remove();
}

// A bearer token, when the server has tokens configured: kept for this tab only.
const TOKEN_KEY = "streamforge.token";
const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

async function call(method, url, body) {
  const init = { method, headers: { accept: "application/json" } };
  if (token()) init.headers.authorization = `Bearer ${token()}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let payload = null;
  try { payload = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = (payload && payload.message) || `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return payload;
}

// -- the queue list ---------------------------------------------------------

async function refreshList() {
  const status = $("filter-status").value;
  const query = new URLSearchParams({ limit: "100" });
  if (status) query.set("status", status);
  try {
    // Page by page with the server's cursor: a page starts after the last queue of the one
    // before, so queues started meanwhile neither repeat nor push others out of view.
    let queues = [];
    let total = 0;
    let next = null;
    for (let page = 0; page < state.pages; page += 1) {
      if (next) query.set("cursor", next);
      const payload = await call("GET", `${state.cfg.status}/queues?${query}`);
      queues = queues.concat(payload.data);
      total = payload.page ? payload.page.total : queues.length;
      next = payload.page ? payload.page.next : null;
      if (!next) break;
    }
    renderList(queues, total);
    $("more").hidden = !next;
  } catch (error) {
    $("list-state").textContent = `Cannot load queues: ${error.message}. Retrying every ${LIST_REFRESH_MS / 1000} s.`;
  }
}

function renderList(queues, total) {
  const list = $("queue-list");
  const focused = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.queueId : null;
  list.replaceChildren(...queues.map((q) => {
    const live = state.queue && state.queue.id === q.id ? state.queue : q;  // the stream is fresher
    const statusBadge = el("span", {});
    badge(statusBadge, live.status);
    const button = el("button", {
      type: "button", class: "queue-item", "data-queue-id": q.id,
      "aria-current": q.id === state.selected ? "true" : null,
    },
    el("span", { class: "qi-main" }, el("strong", { text: q.symbol }), el("span", { text: " " + q.time_range })),
    el("span", { class: "qi-side" }, statusBadge, el("span", { class: "pct", text: ` ${pct(live.progress)}%` })),
    el("span", { class: "qi-id", text: q.id }));
    button.addEventListener("click", () => select(q.id, true));
    return el("li", {}, button);
  }));
  const shown = queues.length < total ? `${queues.length} of ${total}` : `${total}`;
  $("list-state").textContent = total ? `${shown} queue(s), refreshed ${new Date().toLocaleTimeString()}` : "No queues yet.";
  if (focused) {
    const again = list.querySelector(`[data-queue-id="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

function moveInList(event) {
  const buttons = [...$("queue-list").querySelectorAll("button.queue-item")];
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[event.key];
  if (to === undefined) return;
  event.preventDefault();
  buttons[Math.max(0, Math.min(buttons.length - 1, to))].focus();
}

// -- the selected queue -----------------------------------------------------

function select(queueId, byUser) {
  if (state.source) state.source.close();
  state.selected = queueId;
  state.queue = null;
  history.replaceState(null, "", "#queue=" + encodeURIComponent(queueId));
  document.querySelectorAll("button.queue-item").forEach((b) => {
    if (b.dataset.queueId === queueId) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  });
  $("stages").replaceChildren();
  $("action-result").textContent = "";
  $("detail-hint").hidden = true;
  $("detail-body").hidden = false;
  $("detail-heading").textContent = "Loading queue…";
  if (byUser) announce("Loading queue " + queueId);
  connect();
}

// EventSource sends no Authorization header: with a token, the queue is polled instead.
const POLL_MS = 2000;

function poll() {
  const queueId = state.selected;
  const current = () => state.selected === queueId && state.source?.poller === tick;
  setLive("connecting", "Connecting…");
  const tick = async () => {
    if (!current()) return;
    try {
      const payload = await call("GET", `${state.cfg.status}/queues/${encodeURIComponent(queueId)}`);
      if (!current()) return;  // another queue was chosen while this one was on its way
      renderQueue(payload.data);
      if (TERMINAL.has(payload.data.status)) { setLive("ended", `Ended (${payload.data.status})`); return; }
      setLive("live", "Live (polling)");
    } catch (error) {
      if (!current()) return;
      setLive("down", error.message);
      if (/unknown queue|not found|token/i.test(error.message)) return;  // asking again changes nothing
    }
    setTimeout(tick, POLL_MS);
  };
  state.source = { poller: tick, close() { this.poller = null; } };
  tick();
}

function connect() {
  if (state.source) state.source.close();
  if (token()) { poll(); return; }
  const source = new EventSource(`${state.cfg.status}/queues/${encodeURIComponent(state.selected)}/watch`);
  state.source = source;
  setLive("connecting", "Connecting…");
  source.addEventListener("open", () => setLive("live", "Live"));
  source.addEventListener("queue", (event) => {
    const queue = JSON.parse(event.data);
    if (queue.id !== state.selected) return;
    renderQueue(queue);
    if (TERMINAL.has(queue.status)) {  // the server ends the stream; don't reconnect to a finished queue
      source.close();
      setLive("ended", `Ended (${queue.status})`);
    }
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {  // refused (e.g. 404): the browser gives up
      if (state.source === source && !(state.queue && TERMINAL.has(state.queue.status))) diagnose(source);
    } else {
      setLive("connecting", "Reconnecting…");
    }
  });
}

async function diagnose(source) {
  try {
    await call("GET", `${state.cfg.status}/queues/${encodeURIComponent(state.selected)}`);
  } catch (error) {
    if (/unknown queue|not found/i.test(error.message)) {
      $("detail-heading").textContent = "Queue not found";
      setLive("down", error.message);
      return;
    }
  }
  setLive("down", "Disconnected: retrying in 5 s");
  setTimeout(() => { if (state.source === source) connect(); }, 5000);
}

function setLive(kind, text) {
  $("live-state").dataset.state = kind;
  $("live-state").textContent = text;
}

// 42s, 3m05s, 1h02m: an expected remaining time.
function duration(seconds) {
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

function renderQueue(queue) {
  const before = state.queue;
  state.queue = queue;
  $("detail-heading").textContent = `${queue.symbol} · ${queue.time_range}`;
  badge($("q-status"), queue.status);
  $("q-range").textContent = queue.time_range;
  $("q-records").textContent = count(queue.records_written);
  $("q-mode").textContent = `${queue.mode}, on failure: ${queue.on_failure}`;
  $("q-started").textContent = queue.started_at ? new Date(queue.started_at).toLocaleString() : "–";
  $("q-started").title = queue.started_at || "";
  $("q-id").textContent = queue.id;
  setBar($("q-progress"), queue.progress);
  const eta = queue.eta && queue.eta.seconds != null ? ` · ETA ${duration(queue.eta.seconds)}` : "";
  $("q-progress-text").textContent = pct(queue.progress) + "%" + eta;
  $("q-progress-text").title = queue.eta ? (queue.eta.finish_at || queue.eta.basis || "") : "";
  const problem = queue.error_message || (queue.stop_reason ? "Stopped: " + queue.stop_reason : "");
  $("q-error").hidden = !problem;
  $("q-error").textContent = problem;
  $("stop").disabled = TERMINAL.has(queue.status) || queue.status === "stopping";
  $("retry").disabled = queue.status !== "error";
  renderJobs(queue);
  if (typeof renderSkipped === "function") renderSkipped(queue);  // coverage.js
  syncListRow(queue);
  if (!before || before.id !== queue.id) {
    announce(`Queue ${queue.symbol} ${queue.time_range}: ${queue.status}, ${queue.jobs.length} jobs`);
    return;
  }
  const changes = [];
  if (before.status !== queue.status) changes.push(`Queue is now ${queue.status}`);
  queue.jobs.forEach((job, i) => {
    const old = before.jobs[i];
    if (old && old.status !== job.status) changes.push(`Job ${job.index + 1} ${job.target}: ${job.status}`);
  });
  if (changes.length) announce(changes.join(". "));
}

function syncListRow(queue) {
  const button = $("queue-list").querySelector(`[data-queue-id="${CSS.escape(queue.id)}"]`);
  if (!button) return;
  badge(button.querySelector(".badge"), queue.status);
  button.querySelector(".pct").textContent = ` ${pct(queue.progress)}%`;
}

// Stages of the DAG: a job's stage is one past the latest stage it waits for.
function stagesOf(jobs) {
  const depth = [];
  for (const job of jobs) {
    const after = (job.needs || []).map((need) => (depth[need.job] ?? 0) + 1);
    depth[job.index] = after.length ? Math.max(...after) : 0;
  }
  const stages = [];
  jobs.forEach((job) => { (stages[depth[job.index]] ||= []).push(job); });
  return stages.filter(Boolean);
}

function renderJobs(queue) {
  const root = $("stages");
  const key = queue.id + ":" + queue.jobs.map((j) => j.id).join(",");
  if (root.dataset.key !== key) {
    root.dataset.key = key;
    root.replaceChildren(...stagesOf(queue.jobs).map((jobs, i) => el("li", { class: "stage" },
      el("h4", { text: i === 0 ? "Stage 1: starts first" : `Stage ${i + 1}` }),
      el("ul", { class: "jobs" }, ...jobs.map(jobCard)))));
    $("jobs-count").textContent = `(${queue.jobs.length})`;
  }
  for (const job of queue.jobs) updateJob(root.querySelector(`[data-job-id="${CSS.escape(job.id)}"]`), job, queue);
}

function jobCard(job) {
  const name = `Job ${job.index + 1}: ${job.target}`;
  const barId = `job-${job.index}-label`;
  return el("li", { class: "job", "data-job-id": job.id },
    el("div", { class: "job-head" }, el("span", { class: "job-name", id: barId, text: name }),
      el("span", { class: "badge" })),
    el("div", { class: "job-type", text: job.type + (job.streaming ? " · streaming" : "") }),
    el("div", { class: "bar", role: "progressbar", "aria-labelledby": barId, "aria-valuemin": 0,
      "aria-valuemax": 100, "aria-valuenow": 0 }, el("div", { class: "fill" })),
    el("div", { class: "job-meta" }),
    el("p", { class: "job-needs muted" }),
    el("p", { class: "job-waiting" }),
    el("p", { class: "job-error error-text" }));
}

function updateJob(card, job, queue) {
  if (!card) return;
  card.dataset.status = job.status;
  badge(card.querySelector(".badge"), job.status);
  setBar(card.querySelector(".bar"), job.progress, job.status);
  const meta = [`${pct(job.progress)}%`, `${count(job.records_written)} records`];
  if (job.last_loaded_timestamp) meta.push(`loaded to ${job.last_loaded_timestamp}`);
  if (job.attempt) meta.push(`attempt ${job.attempt + 1}`);
  const left = queue.eta && queue.eta.seconds != null && queue.eta.jobs ? queue.eta.jobs[job.id] : null;
  if (left != null) meta.push(`ETA ${duration(left)}`);
  if (job.period) meta.unshift(job.period);
  card.querySelector(".job-meta").textContent = meta.join(" · ");
  const needs = (job.needs || []).map((n) => {
    const other = queue.jobs[n.job];
    return `${other ? `job ${other.index + 1} (${other.target})` : "job " + (n.job + 1)} ${n.until}`;
  });
  setText(card.querySelector(".job-needs"), needs.length ? "After: " + needs.join("; ") : "");
  setText(card.querySelector(".job-waiting"), job.status === "pending" && job.waiting ? "Waiting: " + job.waiting : "");
  setText(card.querySelector(".job-error"), job.error_message ? "Error: " + job.error_message : "");
}

function setText(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

// -- actions ----------------------------------------------------------------

async function act(button, method, url, body, after) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const payload = await call(method, url, body);
    $("action-result").textContent = payload.message;
    $("action-result").dataset.kind = "ok";
    if (after) after(payload);
  } catch (error) {
    $("action-result").textContent = "Failed: " + error.message;
    $("action-result").dataset.kind = "error";
    button.disabled = false;
  } finally {
    button.removeAttribute("aria-busy");
  }
  refreshList();
}

function stopQueue() {
  const id = state.selected;
  act($("stop"), "POST", `${state.cfg.stop}/queues/${encodeURIComponent(id)}/stop`,
    { reason: "stopped from the dashboard" });
}

function retryQueue() {
  const id = state.selected;
  act($("retry"), "POST", `${state.cfg.start}/queues/${encodeURIComponent(id)}/retry`, undefined,
    () => { if (state.selected === id) connect(); });  // the stream had ended with the failure
}

// -- start ------------------------------------------------------------------

async function main() {
  try {
    state.cfg = await call("GET", "/ui/config.json");
  } catch (_) { /* same origin for everything */ }
  $("queue-list").addEventListener("keydown", moveInList);
  $("filter-status").addEventListener("change", () => { state.pages = 1; refreshList(); });
  $("more").addEventListener("click", () => { state.pages += 1; refreshList(); });
  $("refresh").addEventListener("click", refreshList);
  $("stop").addEventListener("click", stopQueue);
  $("retry").addEventListener("click", retryQueue);
  $("token").value = token();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    announce($("token").value.trim() ? "Token set for this tab" : "Token cleared");
    refreshList();
    if (state.selected) connect();
  });
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("queue");
  await refreshList();
  if (fromHash) select(fromHash, false);
  state.timer = setInterval(() => { if (!document.hidden) refreshList(); }, LIST_REFRESH_MS);
}

main();
