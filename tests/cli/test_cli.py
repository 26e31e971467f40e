"""`sfq` against the functions as a real server (`all`, functions-framework on loopback)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared import cli
from shared.cli import api as cli_api
from shared.examples import load
from tests.infra.children import free_port
from tests.servers import ROOT, FunctionServer, base_env

EXAMPLES = ROOT / "shared" / "examples"


def _start(sfq, example: str = "historical") -> dict[str, Any]:
    code, out, err = sfq("--json", "start", "-f", str(EXAMPLES / f"{example}.json"))
    assert code == 0, err
    return json.loads(out)


def _report(server, queue_id: str, job_id: str | None, status: str, **extra: Any) -> None:
    body = {"type": "telemetry", "queue_id": queue_id, "status": status, **extra}
    if job_id:
        body["job_id"] = job_id
    code, reply = server.call("POST", "/telemetry", body)
    assert code == 200 and reply["data"]["outcome"] in ("applied", "duplicate"), reply


def _later(action: Callable[[], None], delay: float = 0.5) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_start_ls_show_stop(sfq):
    payload = str(EXAMPLES / "historical.json")
    code, out, _ = sfq("start", "-f", payload, "--idempotency-key", "cli-june")
    assert code == 0 and out.startswith("Queue started: ") and "(6 jobs)" in out
    queue_id = out.split()[2]
    code, out, _ = sfq("start", "-f", payload, "--idempotency-key", "cli-june")
    assert code == 0 and out.startswith(f"Queue already started (same idempotency key): {queue_id}")

    code, out, _ = sfq("--json", "ls", "--status", "loading", "--symbol", "btcusdt")
    assert code == 0 and queue_id in [q["id"] for q in json.loads(out)]
    code, out, _ = sfq("ls", "--status", "loading")
    assert out.splitlines()[0].split()[:4] == ["ID", "SYMBOL", "TIME", "RANGE"] and queue_id in out

    code, out, _ = sfq("show", queue_id)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith(f"queue {queue_id}  BTCUSDT 2024-06-01:2024-06-30  loading")
    assert sum(line.startswith(("  1 ", "  2 ", "  3 ", "  4 ", "  5 ", "  6 ")) for line in lines) == 6
    assert "      waiting: waiting for inputs" in out
    assert json.loads(sfq("--json", "show", queue_id)[1])["id"] == queue_id

    code, out, _ = sfq("stop", queue_id, "--reason", "from the cli test")
    assert (code, out.strip()) == (0, f"Queue stopped: {queue_id}")
    code, out, _ = sfq("show", queue_id, "--json")  # options also after the command
    assert json.loads(out)["stop_reason"] == "from the cli test"


def test_plan_launches_nothing(sfq):
    before = json.loads(sfq("--json", "ls")[1])
    code, out, _ = sfq("plan", "-f", str(EXAMPLES / "historical.json"))
    assert code == 0 and out.startswith("plan (dag, on failure: stop), nothing launched:")
    assert "  1 loader-producer  api_candles_5m         starts: at start" in out
    assert "starts: waiting for inputs" in out
    plan = json.loads(sfq("--json", "plan", "-f", str(EXAMPLES / "legacy.json"))[1])
    assert [j["manifest"]["kind"] for j in plan["jobs"]] == ["Job"]
    assert json.loads(sfq("--json", "ls")[1]) == before


def test_watch_ends_finished_after_telemetry_from_a_thread(sfq, server):
    started = _start(sfq)
    queue_id, jobs = started["queue_id"], [j["id"] for j in started["jobs"]]

    def telemetry() -> None:
        _report(server, queue_id, jobs[0], "loading", records_written=10,
                last_loaded_timestamp="2024-06-16T00:00:00Z")
        time.sleep(0.6)  # longer than the stream's poll: the watch must get to see 50%
        for n, job in enumerate(jobs):
            time.sleep(0.2)
            _report(server, queue_id, job, "finished", records_written=100 * (n + 1))

    thread = _later(telemetry)
    code, out, err = sfq("watch", queue_id)
    thread.join(5)
    assert code == 0, err
    lines = out.splitlines()
    assert any("  1 loader-producer  api_candles_5m         running    50%" in line for line in lines), out
    assert lines[-1] == f"queue {queue_id} finished: 6/6 jobs finished, 2,100 records"


def test_watch_exit_codes_for_error_and_stopped(sfq, server):
    failing = _start(sfq, "legacy")["queue_id"]
    _later(lambda: _report(server, failing, None, "error", error_message="exchange API returned 500"))
    code, out, _ = sfq("watch", failing)
    assert code == 1 and out.splitlines()[-1].endswith("; error: loader-producer/api: exchange API returned 500")
    assert "      error: exchange API returned 500" in sfq("show", failing)[1]

    stopping = _start(sfq, "legacy")["queue_id"]
    _later(lambda: server.call("POST", f"/queues/{stopping}/stop", {"reason": "enough"}))
    code, out, _ = sfq("watch", stopping)
    assert code == 2 and out.splitlines()[-1].endswith("; reason: enough")
    assert sfq("watch", stopping)[0] == 2  # an ended queue answers at once


def test_retry(sfq, server):
    queue_id = _start(sfq, "legacy")["queue_id"]
    code, _, err = sfq("retry", queue_id)
    assert code == cli_api.REFUSED and "only a failed queue can be retried" in err
    _report(server, queue_id, None, "error", error_message="boom")
    code, out, _ = sfq("retry", queue_id)
    assert code == 0 and out.strip() == "Queue retried: 1 job(s) relaunched"


def test_start_watch_json_is_one_value_per_line(sfq, server):
    def finish() -> None:  # the server's only queue is the one being started
        (queue,) = server.call("GET", "/queues")[1]["data"]
        _report(server, queue["id"], None, "finished", records_written=7)

    _later(finish, 1.0)
    code, out, err = sfq("--json", "start", "-f", str(EXAMPLES / "legacy.json"), "--watch")
    values = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and values[0]["jobs"][0]["target"] == "loader-producer", err
    assert values[-1]["id"] == values[0]["queue_id"] and values[-1]["status"] == "finished"


def test_watch_resumes_after_the_server_restarts(tmp_path):
    """The stream drops (the server is killed); watch reconnects with Last-Event-ID and sees the end."""
    first = FunctionServer("all", base_env(tmp_path / "state"), tmp_path).start()
    queue_id = first.call("POST", "/queues/start", load("legacy"))[1]["data"]["queue_id"]
    out, result = io.StringIO(), {}
    thread = threading.Thread(target=lambda: result.update(code=cli.main(["--url", first.url, "watch", queue_id],
                                                                            out=out)), daemon=True)
    thread.start()
    time.sleep(1.0)
    _kill_hard(first)
    second = FunctionServer("all", base_env(tmp_path / "state"), tmp_path)
    second.port, second.url = first.port, first.url
    with second:
        _report(second, queue_id, None, "finished", records_written=3)
        thread.join(20)
    assert result.get("code") == 0, out.getvalue()
    assert out.getvalue().splitlines()[-1] == f"queue {queue_id} finished: 1/1 jobs finished, 3 records"


def _kill_hard(server: FunctionServer) -> None:
    """SIGKILL the server and its worker (functions-framework serves from a child process, which a
    killed parent would leave running, still answering on the port)."""
    assert server.proc is not None
    pid = server.proc.pid
    workers = [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
               for c in (t / "children").read_text().split()]
    assert workers, "expected functions-framework to serve from a worker process"
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    server.stop(signal.SIGKILL)
    for worker in workers:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{worker}").exists() and "Z" not in _state(worker) and time.monotonic() < deadline:
            time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"status": "success" if self.status < 400 else "error", "message": "backend down",
                           "data": [], "page": {"total": 0}}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen, _Recorder.status = [], 200
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_url_and_token_from_env_and_flags(recorder, monkeypatch, capsys):
    monkeypatch.setenv("SFQ_URL", recorder)
    monkeypatch.setenv("SFQ_TOKEN", "env-token")
    assert cli.main(["ls"], out=io.StringIO()) == 0
    assert cli.main(["ls", "--token", "flag-token"], out=io.StringIO()) == 0
    assert [h.get("Authorization") for h in _Recorder.seen] == ["Bearer env-token", "Bearer flag-token"]
    monkeypatch.delenv("SFQ_TOKEN")
    assert cli.main(["ls"], out=io.StringIO()) == 0
    assert "Authorization" not in _Recorder.seen[-1]
    _Recorder.status = 503
    assert cli.main(["ls"], out=io.StringIO()) == cli_api.UNREACHABLE
    assert "503: backend down" in capsys.readouterr().err


def test_unreachable_is_exit_3_with_a_clear_message(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["--url", url, "ls"], out=io.StringIO()) == 3
    assert f"sfq: cannot reach the queue manager at {url}" in capsys.readouterr().err
    assert cli.main(["--json", "--url", url, "watch", "q"], out=io.StringIO()) == 3
    assert "cannot reach" in json.loads(capsys.readouterr().err)["error"]


def test_usage_errors_are_not_confused_with_queue_states(sfq, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["watch"])
    assert exit_.value.code == cli_api.USAGE
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert sfq("start", "-f", str(bad))[0] == cli_api.USAGE
    assert sfq("ls", url="ftp://example")[0] == cli_api.USAGE
    code, _, err = sfq("start", "-f", str(EXAMPLES / "legacy.json").replace("legacy", "missing"))
    assert code == cli_api.USAGE and "cannot read" in err
    code, _, err = sfq("ls", "--status", "nope")
    assert code == cli_api.REFUSED and "unknown status 'nope'" in err
    code, _, err = sfq("show", "no-such-queue")
    assert code == cli_api.REFUSED and "404: queue 'no-such-queue' not found" in err


def test_console_script_is_installed(server):
    script = Path(sys.executable).parent / "sfq"
    assert script.exists(), "the sfq console script is missing: pip install -e ."
    done = subprocess.run([str(script), "--json", "ls", "--limit", "2"], env={"SFQ_URL": server.url},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), list)
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert "exit codes: 0 done" in helped.stdout and "watch" in helped.stdout
