"""Drive the seed's example queues through start -> telemetry -> finished, and one
through stop, against running functions (`make run`), printing the state as it changes.

    python -m tests.demo --url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from shared.examples import load


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        return json.load(e)


def show(base: str, queue_id: str, note: str) -> dict[str, Any]:
    state = call(f"{base}/queues/{queue_id}")["data"]
    jobs = " ".join(f"{j['target']}:{j['status']}({j['records_written']})" for j in state["jobs"])
    print(f"  [{note:>10}] {state['status']:<8} records={state['records_written']:<6} {jobs}")
    return state


def kafka_record(value: dict[str, Any], offset: int) -> dict[str, str]:
    """Headers KafkaSource would put on this record's CloudEvent."""
    return {"ce-specversion": "1.0", "ce-id": f"partition:0/offset:{offset}",
            "ce-source": "/apis/v1/namespaces/demo/kafkasources/queue-control#queue-control",
            "ce-type": "dev.knative.kafka.event", "ce-subject": f"partition:0#{offset}"}


def run_to_finish(base: str, name: str) -> str:
    """Play the Jobs: each launched job reports loading, then finished; dependents launch as inputs allow."""
    print(f"\n== seed example: {name}")
    started = call(f"{base}/queues/start", "POST", load(name))
    print(f"  {started['message']}: {started['data']['queue_id']} ({started['data']['launcher']})")
    queue_id = started["data"]["queue_id"]
    state = show(base, queue_id, "started")
    offset, step = 0, 0
    while state["status"] not in ("finished", "error", "stopped") and step < 20:
        step += 1
        for job in state["jobs"]:
            status = {"launched": "loading", "running": "finished"}.get(job["status"])
            if status is None:
                continue
            value = {"type": "telemetry", "queue_id": queue_id, "job_id": job["id"], "status": status,
                     "records_written": 100 * step + job["index"]}
            call(f"{base}/telemetry", "POST", value, kafka_record(value, offset))
            offset += 1
        state = show(base, queue_id, f"round {step}")
    return queue_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    base = parser.parse_args(argv).url.rstrip("/")
    try:
        call(f"{base}/health/live")
    except OSError as e:
        print(f"cannot reach {base} ({e}); start the functions with `make run`", file=sys.stderr)
        return 2
    finished = [run_to_finish(base, name) for name in ("historical", "realtime")]
    print("\n== stop: seed example historical, started again and stopped")
    queue_id = call(f"{base}/queues/start", "POST", load("historical"))["data"]["queue_id"]
    show(base, queue_id, "started")
    print("  " + call(f"{base}/queues/stop?queue_id={queue_id}", "POST")["message"])
    stopped = show(base, queue_id, "stopped")
    ok = all(call(f"{base}/queues/{q}")["data"]["status"] == "finished" for q in finished)
    return 0 if ok and stopped["status"] == "stopped" else 1


if __name__ == "__main__":
    sys.exit(main())
