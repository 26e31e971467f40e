"""`sfq group`: follow, stop and retry a group (a start with several symbols).

    sfq start -f template.json --symbols BTCUSDT,ETHUSDT,SOLUSDT   # one queue per symbol
    sfq group ls                    # the groups, by id
    sfq group <group_id>            # its status, progress and queues
    sfq group stop <group_id>       # stop every active queue of it
    sfq group retry <group_id>      # retry its failed queues
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
from typing import Any, TextIO

from shared.cli.api import OK, QUEUE_ERROR, QUEUE_STOPPED, USAGE, Api, CliError

COMMANDS = ("group",)
ACTIONS = ("stop", "retry", "ls")
FINAL = {"finished": OK, "error": QUEUE_ERROR, "stopped": QUEUE_STOPPED}
POLL_S = 2.0
sleep = time.sleep  # between polls of `watch`


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "group", parents=[common], help="a group's status; `group stop|retry ID`; `group ls`",
        description="sfq group ID: the group's status and queues. sfq group stop ID: stop its active queues. "
                    "sfq group retry ID: retry its failed queues. sfq group ls: list groups.")
    sub.add_argument("words", nargs="+", metavar="[stop|retry|ls] ID")
    sub.add_argument("--reason", help="recorded with a stop")
    sub.add_argument("--limit", type=int, default=50, help="groups listed by `group ls`")


def add_start_options(start: argparse.ArgumentParser) -> None:
    start.add_argument("--symbols", help="comma-separated: one queue per symbol, the file as their template")


def start_body(payload: Any, args: argparse.Namespace) -> Any:
    """The start payload; with --symbols, the file's queue as the template of a group."""
    symbols = getattr(args, "symbols", None)
    if not symbols:
        return payload
    if not isinstance(payload, dict):
        raise CliError(USAGE, "--symbols needs a JSON object as the queue template")
    listed = [s.strip() for s in symbols.split(",") if s.strip()]
    if not listed:
        raise CliError(USAGE, "--symbols lists no symbol")
    return {**{k: v for k, v in payload.items() if k != "symbol"}, "symbols": listed}


def _pct(fraction: float | None) -> str:
    return f"{round((fraction or 0) * 100):3d}%"


def status_lines(group: dict[str, Any]) -> list[str]:
    jobs = group.get("jobs", {})
    counts = ", ".join(f"{n} {s}" for s, n in sorted(group.get("counts", {}).items()))
    return [f"group {group['group_id']}  {group['status']}  {_pct(group.get('progress'))}  "
            f"{jobs.get('finished', 0)}/{jobs.get('total', 0)} jobs  {group.get('time_range', '')}",
            f"queues: {counts}",
            f"{'SYMBOL':<20} {'QUEUE ID':<36}  {'STATUS':<9} {'DONE':>4}",
            *(f"{q['symbol']:<20} {q['queue_id']:<36}  {q['status']:<9} {_pct(q.get('progress'))}"
              for q in group.get("queues", []))]


def start_lines(message: str, data: dict[str, Any]) -> list[str]:
    return [f"{message}: group {data['group_id']}",
            *(f"{q['symbol']:<20} {q['queue_id']:<36}  {q['status']}" for q in data["queues"])]


def _print(lines: list[str], out: TextIO) -> None:
    print("\n".join(lines), file=out, flush=True)


def watch(api: Api, group_id: str, out: TextIO, as_json: bool) -> int:
    """Poll the group until none of its queues is active; exit code as for `sfq watch`."""
    seen = None
    path = f"/groups/{urllib.parse.quote(group_id, safe='')}"
    while True:
        group = api.call("GET", path)["data"]
        shown = json.dumps(group) if as_json else status_lines(group)[0]
        if shown != seen:
            print(shown, file=out, flush=True)
            seen = shown
        if group["status"] in FINAL:
            return FINAL[group["status"]]
        sleep(POLL_S)


def run(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    words = args.words
    action, target = (words[0], words[1:]) if words[0] in ACTIONS else ("show", words)
    if (action == "ls" and target) or (action != "ls" and len(target) != 1):
        raise CliError(USAGE, "usage: sfq group ID | sfq group stop ID | sfq group retry ID | sfq group ls")
    if action == "ls":
        reply = api.call("GET", "/groups?" + urllib.parse.urlencode({"limit": args.limit}))
        lines = [f"{'GROUP ID':<36}  {'QUEUES':>6}  {'TIME RANGE':<21} CREATED",
                 *(f"{g['group_id']:<36}  {g['symbols']:>6}  {g['time_range']:<21} {g['created_at']}"
                   for g in reply["data"]), f"{len(reply['data'])} group(s)"]
    else:
        path = f"/groups/{urllib.parse.quote(target[0], safe='')}"
        if action == "show":
            reply = api.call("GET", path)
            lines = status_lines(reply["data"])
        else:
            body = {"reason": args.reason} if action == "stop" and args.reason else None
            reply = api.call("POST", f"{path}/{action}", body)
            key = "changed" if action == "stop" else "retried"
            lines = [f"{reply.get('message', '')}",
                     *(f"{q['symbol']:<20} {q['queue_id']:<36}  {q['status']:<9}{'  *' if q[key] else ''}"
                       for q in reply["data"]["queues"])]
    if args.json:
        print(json.dumps(reply["data"], indent=2), file=out, flush=True)
    else:
        _print(lines, out)
    return OK
