"""Schemathesis against live servers, every check on: no 5xx, no answer the document does not
describe, no undocumented status code, no bad input accepted, no good input refused.

Two topologies, as users run them: the four functions as separate processes sharing one state
(the status function's document sends each operation to its function's URL, `QM_PUBLIC_URLS`,
so stateful links run start → get → watch → stop → retry across them), and the all-in-one.
The seed is `FUZZ_SEED` (fixed by default; `random` draws one), printed either way; `FUZZ_EXAMPLES` sets the examples
per operation. Requests are counted by the servers themselves (their request histograms).
"""

from __future__ import annotations

import glob
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import FunctionServer, base_env, http_call

HERE = Path(__file__).resolve().parent
ST = str(Path(sys.executable).parent / "st")
FUNCTIONS = ("start", "stop", "telemetry", "status")
MIN_REQUESTS = 5000
pytestmark = pytest.mark.timeout(1200)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
# A fixed seed by default, so that CI runs the same cases each time (the stateful phase still
# follows the server's answers, ids included); FUZZ_SEED=random explores new ones.
_SEED = os.environ.get("FUZZ_SEED") or "20261201"
SEED = random.SystemRandom().randrange(1, 2**31) if _SEED == "random" else int(_SEED)
_COUNT = re.compile(r'^queue_manager_request_duration_seconds_count\{[^}]*\} ([0-9.e+]+)$', re.M)
served: dict[str, int] = {}


def _requests(url: str, token: str | None = None) -> int:
    """Requests the server has answered, from its own histogram (this scrape not included)."""
    code, text = http_call(url + "/metrics", "GET", headers={"Authorization": f"Bearer {token}"} if token else None)
    assert code == 200, text
    return int(sum(float(n) for n in _COUNT.findall(text)))


def _schemathesis(url: str, report_dir: Path, *extra: str, examples: int = EXAMPLES) -> dict:
    report_dir.mkdir(parents=True, exist_ok=True)
    print(f"\nschemathesis seed {SEED} ({examples} examples per operation) against {url}"
          f" — reproduce: FUZZ_SEED={SEED} FUZZ_EXAMPLES={EXAMPLES}", flush=True)
    run = subprocess.run(
        [ST, "--config-file", str(HERE / "schemathesis.toml"), "run", f"{url}/openapi.json", "--checks", "all",
         "--seed", str(SEED), "--max-examples", str(examples), "--workers", "1", "--report", "json",
         "--report-dir", str(report_dir), "--output-truncate=true", *extra],
        capture_output=True, text=True, timeout=1800, cwd=report_dir)
    report = json.loads(Path(sorted(glob.glob(str(report_dir / "*.json")))[-1]).read_text())
    failures = report["failures"] + report["errors"]
    (report_dir / "schemathesis.log").write_text(run.stdout + run.stderr)
    shown = run.stdout.split("= FAILURES =", 1)[-1][:20000]  # the cases, each with its curl
    assert run.returncode == 0 and not failures and report["complete"], (
        f"seed {SEED}: {json.dumps(failures, indent=1)[:2000]}\n{shown}\n{run.stderr[-2000:]}\n"
        f"whole output: {report_dir / 'schemathesis.log'}")
    assert report["operations"]["tested"] == report["operations"]["selected"] > 0
    return report


@pytest.fixture(scope="module")
def functions(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("fuzz-functions")
    servers = {f: FunctionServer(f, base_env(base / "state"), base) for f in FUNCTIONS}
    urls = {f: s.url for f, s in servers.items()}
    servers["status"].env["QM_PUBLIC_URLS"] = json.dumps(urls)
    for s in servers.values():
        s.start()
    yield servers
    for s in servers.values():
        s.stop()


def test_the_four_functions_keep_their_document(functions, tmp_path):
    before = {f: _requests(s.url) for f, s in functions.items()}
    # Here each function answers for its own operations only: `Allow` on a path two functions
    # share (/queues: status lists, start starts) is per service, and `/` is Knative's delivery
    # entry of each one. The all-in-one run below holds those checks.
    report = _schemathesis(functions["status"].url, tmp_path, "--exclude-checks",
                           "allow_header_conformance,unsupported_method", "--exclude-operation-id", "deliver")
    after = {f: _requests(s.url) - 1 for f, s in functions.items()}
    counts = {f: after[f] - before[f] for f in FUNCTIONS}
    served["functions"] = sum(counts.values())
    print(f"served per function: {counts}; schemathesis test cases: {report['test_cases']['generated']}")
    assert all(counts[f] > 0 for f in FUNCTIONS), counts  # each operation went to its own function


def test_the_all_in_one_keeps_its_document(tmp_path):
    with FunctionServer("all", base_env(tmp_path / "state"), tmp_path) as server:
        before = _requests(server.url)
        report = _schemathesis(server.url, tmp_path / "report")
        served["all"] = _requests(server.url) - 1 - before
    print(f"served by all: {served['all']}; schemathesis test cases: {report['test_cases']['generated']}")
    assert served["all"] > 0


def test_with_tokens_the_all_in_one_keeps_its_secured_document(tmp_path):
    """Tokens on: the document declares the bearer scheme and the 401/403 answers; schemathesis
    sends the operate token, and its `ignored_auth` check sends none and wants the 401."""
    env = base_env(tmp_path / "state", QM_READ_TOKENS="fuzz-read", QM_OPERATE_TOKENS="fuzz-operate")
    with FunctionServer("all", env, tmp_path) as server:
        code, doc = http_call(server.url + "/openapi.json", "GET")
        assert code == 200 and "bearer" in doc["components"]["securitySchemes"]
        before = _requests(server.url, token="fuzz-read")
        _schemathesis(server.url, tmp_path / "report", "-H", "Authorization: Bearer fuzz-operate",
                      examples=max(1, EXAMPLES // 3))
        served["all, tokens on"] = _requests(server.url, token="fuzz-read") - 1 - before


def test_the_fuzzer_sent_enough_requests():
    print(f"\nfuzzer requests served, seed {SEED}: {served} = {sum(served.values())}")
    assert set(served) == {"functions", "all", "all, tokens on"} and sum(served.values()) >= MIN_REQUESTS, served
