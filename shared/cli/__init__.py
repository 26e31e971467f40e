"""`sfq`: start, stop, list and watch queues from a terminal (stdlib only).

    sfq start -f shared/examples/historical.json --watch
    sfq ls --status loading
    sfq watch <queue_id>            # live per-job progress bars, from GET /queues/{id}/watch
    sfq coverage BTCUSDT api_candles_5m --from 2020-01-01 --to 2024-12-31

The service is `--url` or env SFQ_URL (default http://127.0.0.1:8080); a
bearer token from `--token` or SFQ_TOKEN is sent as the Authorization header.
`--json` prints machine-readable output (for `watch`, one queue per line).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn, TextIO

from shared.cli import coverage, groups, schedules
from shared.cli.api import OK, QUEUE_ERROR, QUEUE_STOPPED, UNREACHABLE, USAGE, Api, CliError, read_json

DEFAULT_URL = "http://127.0.0.1:8080"
FINAL_CODES = {"finished": OK, "error": QUEUE_ERROR, "stopped": QUEUE_STOPPED}
EPILOG = """exit codes: 0 done (watch: queue finished), 1 queue failed, 2 queue stopped,
3 service unreachable or unavailable (502/503/504), 4 request refused (4xx/5xx), 64 usage error"""
RECONNECT_FOR_S = 30.0


# -- output -------------------------------------------------------------------

def _pct(fraction: float | None) -> str:
    return f"{round((fraction or 0) * 100):3d}%"


def _bar(fraction: float | None, width: int, out: TextIO) -> str:
    full, empty = ("█", "░") if (getattr(out, "encoding", "") or "").lower().startswith("utf") else ("#", ".")
    filled = round((fraction or 0) * width)
    return "[" + full * filled + empty * (width - filled) + "]"


def _left(seconds: float | None) -> str:
    """`ETA 1h02m` (or 42s, 3m05s); empty when unknown."""
    if seconds is None:
        return ""
    s = round(seconds)
    text = f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"  ETA {text}"


def _job_line(job: dict[str, Any], out: TextIO, bar: bool, eta: dict[str, Any]) -> str:
    head = f"{job['index'] + 1:>3} {job['target']:<16} {job['type']:<22} {job['status']:<9}"
    meter = f"{_bar(job.get('progress'), 20, out)} " if bar else ""
    left = _left(eta.get("jobs", {}).get(job["id"])) if eta.get("seconds") is not None else ""
    return f"{head} {meter}{_pct(job.get('progress'))} {job.get('records_written', 0):>12,} rec{left}"


def queue_lines(queue: dict[str, Any], out: TextIO, *, bar: bool = True) -> list[str]:
    eta = queue.get("eta") or {}
    head = (f"queue {queue['id']}  {queue['symbol']} {queue['time_range']}  {queue['status']}  "
            f"{_pct(queue.get('progress'))}  {queue.get('records_written', 0):,} records{_left(eta.get('seconds'))}")
    lines = [head]
    for job in queue.get("jobs", []):
        lines.append(_job_line(job, out, bar, eta))
        if job["status"] == "pending" and job.get("waiting"):
            lines.append(f"      waiting: {job['waiting']}")
        if job.get("error_message"):
            lines.append(f"      error: {job['error_message']}")
    return lines


def final_line(queue: dict[str, Any]) -> str:
    jobs = queue.get("jobs", [])
    done = sum(j["status"] in ("finished", "skipped") for j in jobs)
    line = (f"queue {queue['id']} {queue['status']}: {done}/{len(jobs)} jobs finished, "
            f"{queue.get('records_written', 0):,} records")
    if queue.get("error_message"):
        line += f"; error: {queue['error_message']}"
    if queue.get("stop_reason"):
        line += f"; reason: {queue['stop_reason']}"
    return line


class Live:
    """Redraws the queue in place on a terminal; elsewhere prints what changed."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out, self.as_json = out, as_json
        self.tty = not as_json and out.isatty()
        self.drawn, self.seen = 0, {}  # type: ignore[var-annotated]

    def show(self, queue: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(queue), file=self.out, flush=True)
        elif self.tty:
            width = shutil.get_terminal_size().columns
            lines = [line[:width] for line in queue_lines(queue, self.out)]
            up = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
            self.out.write(up + "\n".join(lines) + "\n")
            self.out.flush()
            self.drawn = len(lines)
        else:
            for key, line in [("queue", queue_lines(queue, self.out)[0]),
                              *((j["id"], _job_line(j, self.out, False, queue.get("eta") or {}))
                                for j in queue.get("jobs", []))]:
                if self.seen.get(key) != line:
                    self.seen[key] = line
                    print(line, file=self.out, flush=True)


def watch(api: Api, queue_id: str, out: TextIO, as_json: bool) -> int:
    """Follow a queue until it ends; reconnects (resuming by Last-Event-ID) if an open stream drops."""
    live, last_id, down_since, connected = Live(out, as_json), None, None, False
    path = f"/queues/{urllib.parse.quote(queue_id, safe='')}/watch"
    while True:
        try:
            for event, id_, data in api.events(path, last_id):
                down_since, connected = None, True
                last_id = id_ or last_id
                if event == "queue":
                    queue = json.loads(data)
                    live.show(queue)
                    if queue["status"] in FINAL_CODES:
                        if not as_json:
                            print(final_line(queue), file=out, flush=True)
                        return FINAL_CODES[queue["status"]]
        except CliError as e:
            if e.code != UNREACHABLE or not connected:
                raise
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > RECONNECT_FOR_S:
                raise
        time.sleep(1.0)


# -- commands -----------------------------------------------------------------

def _row(*cells: Any) -> str:
    return "{:>3} {:<16} {:<22} {}".format(*cells)


def _text(args: argparse.Namespace, reply: dict[str, Any], out: TextIO) -> list[str]:
    """What a command prints without --json."""
    data, message = reply["data"], reply.get("message", "")
    if args.command == "start" and "group_id" in data:
        return groups.start_lines(message, data)
    if args.command == "start":
        return [f"{message}: {data['queue_id']} ({len(data['jobs'])} jobs)",
                *(_row(i + 1, j["target"], j["type"], f"{j['status']:<9} {j['id']}")
                  for i, j in enumerate(data["jobs"])), data.get("launcher", "")]
    if args.command == "plan":
        return [f"plan ({data['mode']}, on failure: {data['on_failure']}), nothing launched:",
                *(_row(j["index"] + 1, j["target"], j["type"], f"starts: {j['starts']}") for j in data["jobs"])]
    if args.command == "show":
        return queue_lines(data, out, bar=False)
    if args.command == "retry":
        return [f"{message}: {len(data.get('retried', []))} job(s) relaunched"]
    if args.command == "ls":
        total = reply.get("page", {}).get("total", len(data))
        return [f"{'ID':<36}  {'SYMBOL':<10} {'TIME RANGE':<21} {'STATUS':<9} {'DONE':>4} {'RECORDS':>12}",
                *(f"{q['id']:<36}  {q['symbol']:<10} {q['time_range']:<21} {q['status']:<9} "
                  f"{_pct(q.get('progress'))} {q.get('records_written', 0):>12,}" for q in data),
                f"{len(data)} of {total} queue(s)"]
    return [f"{message}: {data.get('queue_id', '')}"]


PAGE = 500  # the server's largest page


def listing(api: Api, args: argparse.Namespace) -> dict[str, Any]:
    """`--limit` queues, newest first, page after page by the server's cursor (`page.next`),
    so a queue started meanwhile neither repeats one nor hides one."""
    want = args.limit or 50
    query = {k: v for k, v in (("status", args.status), ("symbol", args.symbol)) if v}
    rows: list[Any] = []
    cursor = None
    while True:
        page = {**query, "limit": min(want - len(rows), PAGE), **({"cursor": cursor} if cursor else {})}
        reply = api.call("GET", "/queues?" + urllib.parse.urlencode(page))
        rows += reply["data"]
        cursor = (reply.get("page") or {}).get("next")
        if not cursor or len(rows) >= want:
            return {**reply, "data": rows}


def run(args: argparse.Namespace, api: Api, out: TextIO) -> int:
    if args.command == "watch":
        return watch(api, args.queue_id, out, args.json)
    if args.command in coverage.COMMANDS:
        return coverage.run(args, api, out)
    if args.command in groups.COMMANDS:
        return groups.run(args, api, out)
    if args.command in schedules.COMMANDS:
        return schedules.run(args, api, out)
    qid = urllib.parse.quote(getattr(args, "queue_id", ""), safe="")
    if args.command in ("start", "plan"):
        key = getattr(args, "idempotency_key", None)
        reply = api.call("POST", f"/queues/{args.command}", groups.start_body(read_json(args.file), args),
                         {"Idempotency-Key": key} if key else None)
    elif args.command == "stop":
        reply = api.call("POST", f"/queues/{qid}/stop", {"reason": args.reason} if args.reason else None)
    elif args.command == "retry":
        reply = api.call("POST", f"/queues/{qid}/retry")
    elif args.command == "show":
        reply = api.call("GET", f"/queues/{qid}")
    else:
        reply = listing(api, args)
    following = args.command == "start" and args.watch
    if args.json:  # followed by a watch: one JSON value per line
        print(json.dumps(reply["data"], indent=None if following else 2), file=out, flush=True)
    else:
        print("\n".join(_text(args, reply, out)), file=out, flush=True)
    if following and "group_id" in reply["data"]:
        return groups.watch(api, reply["data"]["group_id"], out, args.json)
    return watch(api, reply["data"]["queue_id"], out, args.json) if following else OK


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's 2 would read as "queue stopped"
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # accepted before or after the command
    common.add_argument("--url", default=argparse.SUPPRESS, help=f"service URL (env SFQ_URL; {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (env SFQ_TOKEN)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    root = _Parser(prog="sfq", description="StreamForge queue manager CLI", epilog=EPILOG, parents=[common],
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, text in (("start", "start a queue"), ("plan", "plan a queue, launching nothing")):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("-f", "--file", required=True, help="JSON payload file ('-' = stdin)")
        if name == "start":
            sub.add_argument("--watch", action="store_true", help="then follow it; exit code as for watch")
            sub.add_argument("--idempotency-key", help="the same key never starts the queue twice")
            groups.add_start_options(sub)
    for name, text in (("stop", "stop a queue"), ("show", "a queue and its jobs"), ("retry", "retry a failed queue"),
                       ("watch", "follow a queue live; exit 0 finished, 1 error, 2 stopped")):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("queue_id")
        if name == "stop":
            sub.add_argument("--reason", help="recorded with the stop")
    ls = commands.add_parser("ls", parents=[common], help="list queues, newest first")
    ls.add_argument("--status", help="e.g. loading, finished (the service checks the name)")
    ls.add_argument("--symbol")
    ls.add_argument("--limit", type=int, default=50)
    coverage.add_commands(commands, common)
    groups.add_commands(commands, common)
    schedules.add_commands(commands, common)
    return root


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    url = getattr(args, "url", None) or os.environ.get("SFQ_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("SFQ_TOKEN") or None
    try:
        return run(args, Api(url, token), out)
    except CliError as e:
        if args.json:
            print(json.dumps({"error": e.message, "errors": e.details}), file=sys.stderr)
        else:
            print(f"sfq: {e.message}", file=sys.stderr)
            for detail in e.details or []:
                where = ".".join(str(p) for p in detail.get("loc", [])) if isinstance(detail, dict) else ""
                print(f"  {where}: {detail.get('msg', detail) if isinstance(detail, dict) else detail}",
                      file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
