"""`sfq coverage` (what is loaded, period by period, as a strip) and `sfq repair`.

    sfq coverage BTCUSDT api_candles_5m --from 2020-01-01 --to 2024-12-31
    sfq coverage BTCUSDT api_candles_5m --from 2024-06-01 --to 2024-06-30 --partition day
    sfq repair <queue_id>           # re-run the periods whose telemetry reported gaps
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any, TextIO

from shared.cli.api import OK, Api

COMMANDS = ("coverage", "repair")
# One character per period; a loaded period with gaps shows as partial.
MARKS = {"loaded": ("█", "#"), "in_flight": ("▒", "~"), "failed": ("x", "x"), "partial": ("◐", "%"),
         "gaps": ("◐", "%"), "present": ("▓", "="), "missing": ("·", "."), "stopped": ("·", ".")}
LEGEND = (("loaded", "loaded"), ("in_flight", "in flight"), ("failed", "failed"),
          ("gaps", "partial or gaps"), ("present", "present, unrecorded"), ("missing", "missing"))
MONTHS_AXIS = "JFMAMJJASOND"


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `coverage` and `repair` with sfq's sub-commands."""
    cov = commands.add_parser(
        "coverage", parents=[common], help="what is loaded of a symbol's type, period by period",
        description="A strip of periods, one character each (a line per year for months, per month for "
                    "days), then the gaps and the queues covering them. --from and --to are required.")
    cov.add_argument("symbol", help="e.g. BTCUSDT")
    cov.add_argument("type", help="the data type, e.g. api_candles_5m")
    cov.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first day (required)")
    cov.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD", help="last day (required)")
    cov.add_argument("--partition", choices=("month", "day"), default="month", help="period size (month)")
    sub = commands.add_parser("repair", parents=[common], help="re-run the periods whose telemetry reported gaps")
    sub.add_argument("queue_id")


def _utf(out: TextIO) -> bool:
    return (getattr(out, "encoding", "") or "").lower().startswith("utf")


def gaps_in(period: dict[str, Any]) -> list[dict[str, str]]:
    """The gaps that fall in the period (a day of a month-long load has only its own)."""
    return [g for g in period.get("gaps", []) if g["from"][:10] <= period["to"] and g["to"][:10] >= period["from"]]


def mark(period: dict[str, Any], utf: bool) -> str:
    status = period["status"]
    if status == "loaded" and gaps_in(period):
        status = "gaps"
    pair = MARKS.get(status, ("?", "?"))
    return pair[0] if utf else pair[1]


def _rows(periods: list[dict[str, Any]], partition: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Periods grouped a line each: by year (months) or by month (days)."""
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    for period in periods:
        key = period["from"][:4] if partition == "month" else period["from"][:7]
        if not rows or rows[-1][0] != key:
            rows.append((key, []))
        rows[-1][1].append(period)
    return rows


def strip_lines(data: dict[str, Any], utf: bool) -> list[str]:
    """The strip: each line a year (or a month), each character a period, placed by its month
    (or day) so that columns line up."""
    partition = data["partition"]
    width = 12 if partition == "month" else 31
    lines = []
    if partition == "month":
        lines.append(f"{'':<8} {MONTHS_AXIS}")
    else:
        lines.append(f"{'':<8} {''.join(str(d % 10) for d in range(1, 32))}")
    for key, periods in _rows(data["periods"], partition):
        cells = [" "] * width
        for period in periods:
            at = int(period["from"][5:7] if partition == "month" else period["from"][8:10]) - 1
            cells[at] = mark(period, utf)
        lines.append(f"{key:<8} {''.join(cells).rstrip()}")
    return lines


def legend(utf: bool) -> str:
    return "  ".join(f"{MARKS[key][0 if utf else 1]} {text}" for key, text in LEGEND)


def summary_line(data: dict[str, Any]) -> str:
    counts = data.get("summary") or {}
    order = [s for s in ("loaded", "in_flight", "failed", "partial", "present", "missing") if s in counts]
    order += sorted(set(counts) - set(order))
    total = sum(counts.values())
    return f"{total} {data['partition']}(s): " + ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in order)


def _holder(period: dict[str, Any]) -> str:
    return period.get("queue_id") or ", ".join(period.get("queues", [])) or "-"


def detail_lines(data: dict[str, Any]) -> list[str]:
    """Below the strip: the gaps, the periods not fully loaded, and the queues covering."""
    lines: list[str] = []
    gaps = [(p, g) for p in data["periods"] for g in gaps_in(p)]
    if gaps:
        lines.append("gaps:")
        lines += [f"  {p['period']:<10} {g['from']} to {g['to']}  queue {_holder(p)}" for p, g in gaps]
    unsettled = [p for p in data["periods"] if p["status"] in ("in_flight", "failed", "partial")]
    if unsettled:
        lines.append("not loaded yet:")
        lines += [f"  {p['period']:<10} {p['status']:<9} queue {_holder(p)}" for p in unsettled]
    queues: dict[str, list[str]] = {}
    for period in data["periods"]:
        for queue in [period["queue_id"]] if period.get("queue_id") else period.get("queues", []):
            queues.setdefault(queue, []).append(period["period"])
    if queues:
        lines.append("covering queues:")
        for queue, names in queues.items():
            span = names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
            lines.append(f"  {queue}  {len(names)} period(s), {span}")
    return lines


def coverage_lines(data: dict[str, Any], out: TextIO) -> list[str]:
    utf = _utf(out)
    head = f"{data['symbol']} {data['type']}  {data['from']} → {data['to']}  by {data['partition']}"
    return [head if utf else head.replace("→", "->"), *strip_lines(data, utf), legend(utf),
            summary_line(data), *detail_lines(data)]


def run(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    if args.command == "coverage":
        query = urllib.parse.urlencode({"symbol": args.symbol, "type": args.type, "from": args.start,
                                        "to": args.end, "partition": args.partition})
        reply = api.call("GET", f"/coverage?{query}")
        lines = coverage_lines(reply["data"], out)
    else:
        reply = api.call("POST", f"/queues/{urllib.parse.quote(args.queue_id, safe='')}/repair")
        repaired = reply["data"].get("repaired", [])
        lines = [f"{reply.get('message', 'Queue repairing')}: {reply['data']['queue_id']} "
                 f"({len(repaired)} job(s) relaunched)", *(f"  {job}" for job in repaired)]
    if args.json:
        print(json.dumps(reply["data"], indent=2), file=out, flush=True)
    else:
        print("\n".join(lines), file=out, flush=True)
    return OK
