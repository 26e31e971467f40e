// StreamForge dashboard, groups: GET /groups (a start with several symbols makes one), a
// group's status and queues from GET /groups/{id} (refreshed while it runs), and its stop and
// retry. Uses app.js's $(), el(), call(), badge(), setBar(), pct(), announce(), select() and state.
"use strict";

const GROUP_REFRESH_MS = 3000;
const groups = { selected: null, timer: null };

async function refreshGroups() {
  try {
    const payload = await call("GET", `${state.cfg.status}/groups?limit=100`);
    renderGroupList(payload.data);
    $("groups-state").textContent = payload.data.length
      ? `${payload.data.length} group(s), refreshed ${new Date().toLocaleTimeString()}` : "No groups yet.";
  } catch (error) {
    $("groups-state").textContent = "Cannot load groups: " + error.message;
  }
}

function renderGroupList(rows) {
  $("group-list").replaceChildren(...rows.map((g) => {
    const button = el("button", {
      type: "button", class: "queue-item", "data-group-id": g.group_id,
      "aria-current": g.group_id === groups.selected ? "true" : null,
    },
    el("span", { class: "qi-main" }, el("strong", { text: `${g.symbols} symbol(s)` }),
      el("span", { text: " " + g.time_range })),
    el("span", { class: "qi-side muted", text: (g.requests || []).map((r) => r.type).join(", ") }),
    el("span", { class: "qi-id", text: g.group_id }));
    button.addEventListener("click", () => selectGroup(g.group_id));
    return el("li", {}, button);
  }));
}

function queueRow(queue) {
  const status = el("span", {});
  badge(status, queue.status);
  const link = el("a", { href: "#queue=" + encodeURIComponent(queue.queue_id), text: queue.queue_id });
  link.addEventListener("click", (event) => { event.preventDefault(); select(queue.queue_id, true); });
  return el("tr", { "data-queue-id": queue.queue_id },
    el("th", { scope: "row", text: queue.symbol }), el("td", {}, link), el("td", {}, status),
    el("td", { class: "pct", text: `${pct(queue.progress)}%` }));
}

function renderGroup(group) {
  $("group-body").hidden = false;
  $("group-heading").textContent = `Group ${group.group_id}`;
  badge($("g-status"), group.status);
  const jobs = group.jobs || { finished: 0, total: 0 };
  setBar($("g-progress"), group.progress, `${jobs.finished} of ${jobs.total} jobs finished`);
  $("g-progress-text").textContent = `${pct(group.progress)}%`;
  $("g-counts").textContent = `${jobs.finished}/${jobs.total} jobs finished; queues: `
    + Object.entries(group.counts || {}).map(([s, n]) => `${n} ${s}`).join(", ");
  $("g-queues-body").replaceChildren(...group.queues.map(queueRow));
  for (const button of $("group-list").querySelectorAll("button.queue-item")) {
    button.setAttribute("aria-current", button.dataset.groupId === group.group_id ? "true" : "false");
  }
}

async function loadGroup() {
  if (!groups.selected) return;
  try {
    const payload = await call("GET", `${state.cfg.status}/groups/${encodeURIComponent(groups.selected)}`);
    renderGroup(payload.data);
    if (TERMINAL.has(payload.data.status)) stopGroupTimer();
  } catch (error) {
    $("g-result").textContent = "Cannot load the group: " + error.message;
    $("g-result").dataset.kind = "error";
  }
}

function stopGroupTimer() {
  if (groups.timer) clearInterval(groups.timer);
  groups.timer = null;
}

function followGroup() {
  stopGroupTimer();
  loadGroup();
  groups.timer = setInterval(() => { if (!document.hidden) loadGroup(); }, GROUP_REFRESH_MS);
}

function selectGroup(groupId) {
  groups.selected = groupId;
  $("g-result").textContent = "";
  followGroup();
}

async function groupAction(button, path, done) {
  button.disabled = true;
  $("g-result").dataset.kind = "";
  try {
    const payload = await call("POST", `${path}/groups/${encodeURIComponent(groups.selected)}/${done}`);
    $("g-result").textContent = payload.message;
    announce(payload.message);
    followGroup();  // a retry makes the group run again
  } catch (error) {
    $("g-result").textContent = `Cannot ${done === "stop" ? "stop" : "retry"} the group: ${error.message}`;
    $("g-result").dataset.kind = "error";
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("groups-refresh").addEventListener("click", refreshGroups);
  $("g-stop").addEventListener("click", () => groupAction($("g-stop"), state.cfg.stop, "stop"));
  $("g-retry").addEventListener("click", () => groupAction($("g-retry"), state.cfg.start, "retry"));
  refreshGroups();
});
