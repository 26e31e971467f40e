"""`sfq schedule`: set up, list, show, pause, resume and delete schedules.

    sfq schedule create nightly.json                 # a whole spec: {name, cron, timezone, queue, ...}
    sfq schedule create queue.json --name nightly --cron "0 1 * * *" --timezone Europe/Berlin
    sfq schedule ls
    sfq schedule nightly                             # next fire times, last runs, what was missed
    sfq schedule pause nightly | resume nightly | delete nightly
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from typing import Any, TextIO

from shared.cli.api import OK, USAGE, Api, CliError, read_json

COMMANDS = ("schedule",)
ACTIONS = ("create", "ls", "pause", "resume", "delete")
_SPEC = ("name", "cron", "timezone", "concurrency", "catch_up")


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "schedule", parents=[common], help="schedules: `schedule ls`, `schedule NAME`, "
                                           "`schedule create FILE`, `schedule pause|resume|delete NAME`",
        description="A schedule starts its queue at each fire time of a cron expression in a time zone. "
                    "`create FILE` takes a whole spec, or a queue (its time_range may be relative: yesterday, "
                    "last 7 days, previous month) with --name and --cron.")
    sub.add_argument("words", nargs="+", metavar="[create|ls|pause|resume|delete] NAME|FILE")
    sub.add_argument("--name")
    sub.add_argument("--cron", help='e.g. "0 1 * * *" or @daily')
    sub.add_argument("--timezone", help="an IANA zone (UTC)")
    sub.add_argument("--concurrency", choices=("allow", "forbid", "replace"))
    sub.add_argument("--catch-up", dest="catch_up", type=int, help="fire times started after an outage (3)")
    sub.add_argument("--limit", type=int, default=100, help="schedules listed by `schedule ls`")


def spec(payload: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The spec to send: the file's, with the flags given; a queue alone becomes `queue`."""
    if not isinstance(payload, dict):
        raise CliError(USAGE, "the file must hold a JSON object: a schedule, or the queue it starts")
    body = dict(payload) if "queue" in payload else {"queue": payload}
    body.update({k: getattr(args, k) for k in _SPEC if getattr(args, k, None) is not None})
    if "name" not in body or "cron" not in body:
        raise CliError(USAGE, "a schedule needs a name and a cron expression (--name, --cron)")
    return body


def detail_lines(data: dict[str, Any]) -> list[str]:
    state = "paused" if data.get("paused") else "active"
    lines = [f"{data['name']}  {data['cron']}  {data['timezone']}  {state}  concurrency {data['concurrency']}, "
             f"catch-up {data['catch_up']}",
             f"queue: {data['queue'].get('symbol') or ','.join(data['queue'].get('symbols', []))} "
             f"{data['queue'].get('time_range')}"]
    fires = data.get("next_fire_times") or []
    lines.append("next: " + (", ".join(fires) if fires else "-"))
    missed = data.get("missed") or {}
    if missed.get("count"):
        lines.append(f"missed: {missed['count']} fire time(s) past the catch-up bound")
        lines += [f"  {m['from']} .. {m['to']}  {m['count']}" for m in missed.get("recent", [])]
    runs = data.get("runs") or []
    if runs:
        lines.append(f"{'FIRE TIME':<24}  {'OUTCOME':<9}  {'TIME RANGE':<21}  QUEUE")
        for run in runs:
            queue = run.get("queue_id") or run.get("group_id") or run.get("message") or "-"
            status = f" ({run['queue_status']})" if run.get("queue_status") else ""
            lines.append(f"{run['fire']:<24}  {run['outcome']:<9}  {run.get('time_range') or '-':<21}  "
                         f"{queue}{status}")
    return lines


def list_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"{'NAME':<24} {'CRON':<16} {'TIME ZONE':<20} {'NEXT':<24} LAST RUN"]
    for s in data["items"]:
        last = s.get("last_run") or {}
        lines.append(f"{s['name']:<24} {s['cron']:<16} {s['timezone']:<20} "
                     f"{'paused' if s['paused'] else s.get('next_at') or '-':<24} "
                     f"{last.get('fire', '-')} {last.get('outcome', '')}".rstrip())
    lines.append(f"{len(data['items'])} of {data['total']} schedule(s)")
    return lines


def run(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    words = args.words
    action, target = (words[0], words[1:]) if words[0] in ACTIONS else ("show", words)
    if (action == "ls" and target) or (action != "ls" and len(target) != 1):
        raise CliError(USAGE, "usage: sfq schedule ls | NAME | create FILE | pause|resume|delete NAME")
    if action == "ls":
        reply = api.call("GET", "/schedules?" + urllib.parse.urlencode({"limit": args.limit}))
        lines = list_lines(reply["data"])
    elif action == "create":
        reply = api.call("POST", "/schedules", spec(read_json(target[0]), args))
        lines = [reply.get("message", ""), *detail_lines(reply["data"])]
    else:
        path = f"/schedules/{urllib.parse.quote(target[0], safe='')}"
        if action == "show":
            reply = api.call("GET", path)
        elif action == "delete":
            reply = api.call("DELETE", path)
        else:
            reply = api.call("POST", f"{path}/{action}")
        lines = [reply.get("message", "")] if action == "delete" else \
            ([] if action == "show" else [reply.get("message", "")]) + detail_lines(reply["data"])
    if args.json:
        print(json.dumps(reply["data"], indent=2), file=out, flush=True)
    else:
        print("\n".join(lines), file=out, flush=True)
    return OK
