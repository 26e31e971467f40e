// StreamForge dashboard, coverage: GET /coverage drawn as a strip of periods (one cell per month
// or day, coloured by status, a marker on loaded periods with gaps), and the periods a queue
// skipped at start because other queues cover them. Uses app.js's el(), call() and state.
"use strict";

const COVERAGE_TEXT = {
  loaded: "loaded", in_flight: "in flight", failed: "failed", partial: "partial", missing: "missing",
  present: "present (unrecorded)", gaps: "loaded with gaps",
};

// The gaps inside a period: a day of a month-long load shows only its own.
function gapsIn(period) {
  return (period.gaps || []).filter((g) => g.from.slice(0, 10) <= period.to && g.to.slice(0, 10) >= period.from);
}

function cellStatus(period) {
  return period.status === "loaded" && gapsIn(period).length ? "gaps" : period.status;
}

function cellTitle(period) {
  const lines = [`${period.period} (${period.from} – ${period.to}): ${COVERAGE_TEXT[cellStatus(period)] || period.status}`];
  const queues = period.queue_id ? [period.queue_id] : (period.queues || []);
  if (queues.length) lines.push("queue " + queues.join(", "));
  if (period.records !== undefined) lines.push(`${count(period.records)} records`);
  if (period.datasets && period.datasets.length) lines.push(period.datasets.join(", "));
  for (const gap of gapsIn(period)) lines.push(`gap ${gap.from} – ${gap.to}`);
  return lines.join("\n");
}

// A row per year (months) or per month (days), so that columns line up.
function coverageRows(periods, partition) {
  const rows = [];
  for (const period of periods) {
    const key = partition === "month" ? period.from.slice(0, 4) : period.from.slice(0, 7);
    if (!rows.length || rows[rows.length - 1].key !== key) rows.push({ key, periods: [] });
    rows[rows.length - 1].periods.push(period);
  }
  return rows;
}

function coverageCell(period, partition) {
  const status = cellStatus(period);
  const slot = Number(partition === "month" ? period.from.slice(5, 7) : period.from.slice(8, 10));
  const cell = el("li", {
    class: `cov-cell cov-${status}`, title: cellTitle(period), "data-period": period.period,
    "data-status": status, tabindex: 0, "aria-label": cellTitle(period).replaceAll("\n", "; "),
  });
  cell.style.gridColumnStart = String(slot);
  return cell;
}

function renderCoverage(data) {
  const strip = $("cov-strip");
  strip.dataset.partition = data.partition;
  strip.replaceChildren(...coverageRows(data.periods, data.partition).map((row) => el("div", { class: "cov-row" },
    el("span", { class: "cov-key", text: row.key }),
    el("ol", { class: "cov-cells", "aria-label": row.key }, ...row.periods.map((p) => coverageCell(p, data.partition))))));
  const order = ["loaded", "in_flight", "failed", "partial", "present", "missing"];
  const summary = Object.entries(data.summary || {})
    .sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]))
    .map(([status, n]) => `${n} ${COVERAGE_TEXT[status] || status}`);
  const gapped = data.periods.filter((p) => cellStatus(p) === "gaps").length;
  if (gapped) summary.push(`${gapped} with gaps`);
  $("cov-summary").textContent = `${data.symbol} ${data.type}, ${data.from} – ${data.to}: ${summary.join(", ")}`;
  $("cov-legend").hidden = false;
}

async function loadCoverage(event) {
  if (event) event.preventDefault();
  const query = new URLSearchParams({
    symbol: $("cov-symbol").value.trim(), type: $("cov-type").value.trim(),
    from: $("cov-from").value, to: $("cov-to").value, partition: $("cov-partition").value,
  });
  $("cov-state").textContent = "Loading coverage…";
  $("cov-state").dataset.kind = "";
  try {
    const payload = await call("GET", `${state.cfg.status}/coverage?${query}`);
    renderCoverage(payload.data);
    $("cov-state").textContent = "";
  } catch (error) {
    $("cov-strip").replaceChildren();
    $("cov-summary").textContent = "";
    $("cov-state").textContent = "Cannot load coverage: " + error.message;
    $("cov-state").dataset.kind = "error";
  }
}

// On a queue's detail: the periods it did not load because other queues cover them.
function renderSkipped(queue) {
  const skipped = queue.skipped || [];
  $("skipped").hidden = !skipped.length;
  $("skipped-list").replaceChildren(...skipped.map((s) => {
    const holder = s.queue_id || (s.queues || []).join(", ");
    const link = el("a", { href: "#queue=" + encodeURIComponent(s.queue_id || ""), text: holder || "another queue" });
    if (s.queue_id) link.addEventListener("click", (e) => { e.preventDefault(); select(s.queue_id, true); });
    return el("li", { class: "skipped-item" }, el("span", { text: `${s.type} ${s.period} (${s.status}) — covered by ` }),
      link, s.records !== undefined ? el("span", { text: `, ${count(s.records)} records` }) : null);
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("cov-form").addEventListener("submit", loadCoverage);
});
