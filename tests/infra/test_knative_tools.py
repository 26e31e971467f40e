"""Tests for the Knative validation tooling.

* ``tests/infra/knative``: ``knvalidate`` validates manifests with the
  upstream Knative Serving / Eventing / eventing-kafka-broker Go code.
* ``tests/infra/func``: the real Knative ``func`` CLI (built from the Go
  module proxy) and ``funcyamlcheck``; ``func invoke`` is exercised against a
  local recording HTTP server to pin down the exact request it sends.

The binaries are built (or reused from the cache) by the ``build.sh`` of
each directory. Without Go, or when a build fails, the tests are skipped,
except when the environment variable ``CI`` is set: then they fail.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parent
KN_DIR = INFRA / "knative"
FUNC_DIR = INFRA / "func"
KN_DATA = KN_DIR / "testdata"
FUNC_DATA = FUNC_DIR / "testdata"

# A cold build downloads a few hundred modules and compiles them; the func CLI
# is by far the biggest. Generous, but bounded.
BUILD_TIMEOUT = int(os.environ.get("KN_TOOLS_BUILD_TIMEOUT", "3600"))

# pytest-timeout counts fixture setup: the first test pays for the build.
# Every subprocess below has its own timeout, so nothing can hang unbounded.
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 300)


def _in_ci() -> bool:
    return bool(os.environ.get("CI"))


def _build(script: Path, binaries: list[str]) -> Path:
    """Run build.sh; return the bin dir. Skip (locally) or fail (CI) on error."""
    if shutil.which("go") is None:
        msg = "Go toolchain not found in PATH; cannot build " + script.parent.name + " tools"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        proc = subprocess.run(
            ["bash", str(script)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = [o.decode(errors="replace") if isinstance(o, bytes) else (o or "") for o in (exc.stdout, exc.stderr)]
        msg = f"{script} timed out after {BUILD_TIMEOUT}s:\n{out[0][-4000:]}\n{out[1][-8000:]}"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    if proc.returncode != 0:
        msg = f"{script} failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    sys.stderr.write(proc.stdout)
    bindir = Path(
        subprocess.run(["bash", str(script), "--print-dir"], capture_output=True, text=True, check=True).stdout.strip()
    )
    for b in binaries:
        assert (bindir / b).is_file(), f"{script} did not produce {bindir / b}"
    return bindir


def _go_mod_requires(go_mod: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*(?:require\s+)?([a-z0-9.\-]+\.[a-z]+/\S+)\s+(v\S+)", go_mod.read_text(), re.M):
        out[m.group(1)] = m.group(2)
    return out


# --------------------------------------------------------------------------
# knvalidate
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def knvalidate() -> Path:
    return _build(KN_DIR / "build.sh", ["knvalidate"]) / "knvalidate"


def _run_kn(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


def test_knvalidate_valid_manifests_pass(knvalidate: Path) -> None:
    proc = _run_kn(knvalidate, str(KN_DATA / "valid"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stdout
    expected = [
        "Service/queue-dispatcher",
        "KafkaSource/jobs-source",
        "KafkaSource/results-source",
        "Broker/default",
        "Trigger/job-completed",
        "Trigger/job-failed",
        "KafkaSink/results-sink",
        "ApiServerSource/queue-config-watcher",
        "PingSource/queue-sweeper",
        "Namespace/streamforge",
        "ServiceAccount/queue-config-watcher",
        "Role/configmap-watcher",
        "RoleBinding/queue-config-watcher",
        "ClusterRole/streamforge-event-viewer",
        "ClusterRoleBinding/streamforge-event-viewer",
        "ConfigMap/kafka-broker-config",
        "Secret/kafka-sasl",
        "PrometheusRule/streamforge-qm",
    ]
    ok_lines = [line for line in proc.stdout.splitlines() if line.startswith("OK ")]
    for obj in expected:
        assert any(line.startswith(f"OK {obj} ") for line in ok_lines), f"{obj} not OK:\n{proc.stdout}"
    assert "OK kustomization" in proc.stdout
    assert f"{len(expected)} object(s), 0 error(s), 0 warning(s)" in proc.stdout


INVALID_CASES = {
    "service-unknown-field.yaml": 'strict decoding: unknown field "spec.template.spec.containers[0].containerPorts"',
    "service-bad-annotation.yaml": (
        "invalid value: zero: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"
    ),
    "trigger-no-subscriber.yaml": "expected at least one, got none: spec.subscriber.ref, spec.subscriber.uri",
    "kafkasource-bad-backoff.yaml": "invalid value: 500ms: spec.delivery.backoffDelay",
    "kafkasource-bad-offset.yaml": "invalid value: oldest: spec.initialOffset",
    "broker-kafka-config-not-configmap.yaml": "invalid value: Secret: spec.config.kind",
    "kafkasink-bad-content-mode.yaml": "invalid value: avro: spec.contentMode",
    "pingsource-bad-schedule.yaml": "spec.schedule",
    "rolebinding-no-roleref-name.yaml": "missing field(s): roleRef.name",
    "configmap-bad-name.yaml": "a lowercase RFC 1123 subdomain must consist of",
    "duplicate-key.yaml": 'key "name" already set in map',
    "unsupported-kind.yaml": "unsupported kind apps/v1 Deployment",
    "prometheusrule-unknown-field.yaml": 'unknown field "spec.groups[0].rules[0].expression"',
    "kustomize-missing": 'kustomization resources entry "does-not-exist.yaml" does not exist',
}


def test_every_invalid_file_has_a_case() -> None:
    on_disk = {p.name for p in (KN_DATA / "invalid").iterdir()}
    assert on_disk == set(INVALID_CASES)


@pytest.mark.parametrize("name", sorted(INVALID_CASES))
def test_knvalidate_invalid_manifest_fails(knvalidate: Path, name: str) -> None:
    proc = _run_kn(knvalidate, str(KN_DATA / "invalid" / name))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR ")]
    assert errors, proc.stdout
    assert any(INVALID_CASES[name] in line for line in errors), f"expected {INVALID_CASES[name]!r} in:\n{proc.stdout}"


def test_knvalidate_reports_file_kind_and_name(knvalidate: Path) -> None:
    f = KN_DATA / "invalid" / "trigger-no-subscriber.yaml"
    proc = _run_kn(knvalidate, str(f))
    assert f"ERROR {f}#1: Trigger/job-completed: " in proc.stdout


def test_knvalidate_timeout_needs_default_feature_flags(knvalidate: Path, tmp_path: Path) -> None:
    # delivery.timeout is allowed by the default config-features of a fresh
    # installation; switching the flag off must make it an error.
    src = KN_DATA / "valid" / "kafkasource.yaml"
    assert _run_kn(knvalidate, str(src)).returncode == 0
    proc = _run_kn(knvalidate, "--eventing-feature", "delivery-timeout=disabled", str(src))
    assert proc.returncode == 1
    assert "must not set the field(s): spec.delivery.timeout" in proc.stdout


def test_knvalidate_print_versions_match_go_mod(knvalidate: Path) -> None:
    proc = _run_kn(knvalidate, "--print-versions")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    req = _go_mod_requires(KN_DIR / "go.mod")
    for mod in ("knative.dev/serving", "knative.dev/eventing", "knative.dev/eventing-kafka-broker"):
        assert f"{mod} {req[mod]}\n" in proc.stdout, proc.stdout


def test_knvalidate_usage_error(knvalidate: Path) -> None:
    assert _run_kn(knvalidate).returncode == 2


# --------------------------------------------------------------------------
# func CLI + funcyamlcheck
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def func_bin() -> Path:
    return _build(FUNC_DIR / "build.sh", ["func", "funcyamlcheck", "func_yaml-schema.json"])


@pytest.fixture()
def func_env(tmp_path: Path) -> dict[str, str]:
    """Hermetic environment: no user func config, no kubeconfig, no cluster."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNC_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        KUBECONFIG=str(home / "no-kubeconfig"),
        NO_COLOR="1",
    )
    return env


def test_funcyamlcheck_accepts_minimal_and_full(func_bin: Path) -> None:
    proc = subprocess.run(
        [str(func_bin / "funcyamlcheck"), str(FUNC_DATA / "minimal"), str(FUNC_DATA / "full" / "func.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("OK ") == 2
    assert "no JSON schema found" not in proc.stderr


FUNC_INVALID = {
    "no-created": ["function not initialized", "schema: (root): created is required"],
    "unknown-field": ["strict decode:", "invokeFormat", "Additional property invokeFormat is not allowed"],
    "bad-invoke": ["schema: invoke: invoke must be one of the following"],
    "bad-scale": [
        '"scale.max" value must be greater or equal to "scale.min"',
        '"scale.metric" has invalid value set: cpu',
    ],
    # a whole secret ({{ secret:NAME }}) is only allowed on an env WITHOUT name
    "bad-env": [
        "env entry #0 with name 'KAFKA_PASSWORD' has invalid value field set",
        "env entry #1 has invalid name set",
    ],
}


@pytest.mark.parametrize("name", sorted(FUNC_INVALID))
def test_funcyamlcheck_rejects(func_bin: Path, name: str) -> None:
    proc = subprocess.run(
        [str(func_bin / "funcyamlcheck"), str(FUNC_DATA / "invalid" / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for needle in FUNC_INVALID[name]:
        assert needle in proc.stdout, f"{needle!r} not in:\n{proc.stdout}"


Invoke = Callable[..., subprocess.CompletedProcess[str]]


class RecordingServer:
    """Runs testdata/echo_server.py and collects the requests it records."""

    def __init__(self, reply: str = "event") -> None:
        self.reply = reply
        self.proc = subprocess.Popen(
            [sys.executable, str(FUNC_DATA / "echo_server.py"), "--port", "0", "--reply", reply],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first.startswith("LISTENING "), first
        self.port = int(first.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self.records: queue.Queue[dict] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.put(json.loads(line))

    def next_request(self) -> dict:
        return self.records.get(timeout=30)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._pump_thread.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture()
def server():
    srv = RecordingServer()
    yield srv
    srv.close()


@pytest.fixture()
def fn_dir(tmp_path: Path) -> Path:
    """A writable copy of testdata/minimal: func creates .func/ and .gitignore in it."""
    d = tmp_path / "fn"
    shutil.copytree(FUNC_DATA / "minimal", d)
    return d


@pytest.fixture()
def invoke(func_bin: Path, func_env: dict[str, str]) -> Invoke:
    """invoke(function dir, target URL, *flags): `func invoke --path DIR --target URL FLAGS...`."""

    def run(path: Path, target: str, *flags: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(func_bin / "func"), "invoke", "--path", str(path), "--target", target, *flags]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=func_env)

    return run


def test_func_invoke_http(invoke: Invoke, fn_dir: Path, server: RecordingServer) -> None:
    data = '{"job_id": "j-1", "queue": "default"}'
    proc = invoke(fn_dir, server.url + "jobs?x=1", "--format", "http", "--data", data,
                  "--content-type", "application/json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    req = server.next_request()
    assert req["method"] == "POST"
    assert req["path"] == "/jobs?x=1"
    assert req["body"] == data  # raw bytes, not base64, no envelope
    assert req["headers"]["content-type"] == "application/json"
    assert not [h for h in req["headers"] if h.startswith("ce-")]
    # the response body is printed as-is
    assert json.loads(proc.stdout)["echo"]["body"] == data


def test_func_invoke_http_file(
    invoke: Invoke, fn_dir: Path, server: RecordingServer, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(b'{"from": "file"}\n')
    proc = invoke(fn_dir, server.url, "--format", "http", "--file", str(payload), "--content-type", "application/json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    req = server.next_request()
    assert req["body"] == '{"from": "file"}\n'  # file content verbatim (no base64)


def test_func_invoke_cloudevent(
    invoke: Invoke, fn_dir: Path, server: RecordingServer
) -> None:
    data = '{"job_id": "j-2"}'
    proc = invoke(fn_dir, server.url, "--format", "cloudevent", "--data", data, "--content-type", "application/json",
                  "--id", "evt-1", "--source", "/streamforge/test", "--type", "dev.streamforge.job.submitted")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    req = server.next_request()
    h = req["headers"]
    assert req["method"] == "POST"
    assert req["path"] == "/"
    assert h["ce-specversion"] == "1.0"
    assert h["ce-id"] == "evt-1"
    assert h["ce-source"] == "/streamforge/test"
    assert h["ce-type"] == "dev.streamforge.job.submitted"
    assert h["content-type"] == "application/json"
    assert req["body"] == data
    # the reply event is printed by func
    assert "reply-evt-1" in proc.stdout


def test_func_invoke_cloudevent_defaults(
    invoke: Invoke, fn_dir: Path, server: RecordingServer
) -> None:
    proc = invoke(fn_dir, server.url, "--format", "cloudevent")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    h = server.next_request()["headers"]
    assert h["ce-type"] == "boson.fn"
    assert h["ce-source"] == "/boson/fn"
    assert re.fullmatch(r"[0-9a-f-]{36}", h["ce-id"]), h["ce-id"]
    assert "ce-time" in h


def test_func_invoke_requires_initialized_function(
    invoke: Invoke, tmp_path: Path, server: RecordingServer
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = invoke(empty, server.url, "--format", "http")
    assert proc.returncode != 0
    assert "no function found" in proc.stdout + proc.stderr
    assert server.records.empty()


def test_func_invoke_created_is_enough(
    invoke: Invoke, server: RecordingServer, tmp_path: Path
) -> None:
    # func's loader migrates a func.yaml without specVersion; only `created`
    # is needed for invoke (the JSON schema still requires specVersion).
    (tmp_path / "func.yaml").write_text("created: 2026-01-01T00:00:00Z\n")
    proc = invoke(tmp_path, server.url, "--data", "{}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    req = server.next_request()
    assert "ce-id" not in req["headers"]  # default format is http


def test_func_invoke_format_from_func_yaml(
    invoke: Invoke, server: RecordingServer, tmp_path: Path
) -> None:
    (tmp_path / "func.yaml").write_text("specVersion: 0.36.0\ncreated: 2026-01-01T00:00:00Z\ninvoke: cloudevent\n")
    proc = invoke(tmp_path, server.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert server.next_request()["headers"]["ce-type"] == "boson.fn"


def test_func_invoke_get_still_sends_body(
    invoke: Invoke, fn_dir: Path, server: RecordingServer
) -> None:
    proc = invoke(fn_dir, server.url + "q", "--format", "http", "--request-type", "GET")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    req = server.next_request()
    assert req["method"] == "GET"
    assert req["body"] == '{"message":"Hello World"}'


@pytest.fixture()
def failing_server():
    srv = RecordingServer(reply="error")
    yield srv
    srv.close()


def test_func_invoke_http_error_status_fails(
    invoke: Invoke, fn_dir: Path, failing_server: RecordingServer
) -> None:
    proc = invoke(fn_dir, failing_server.url, "--format", "http")
    assert proc.returncode == 1
    assert "(HTTP 500)" in proc.stderr


def test_func_invoke_cloudevent_exit_code_ignores_errors(
    invoke: Invoke, fn_dir: Path, failing_server: RecordingServer
) -> None:
    # Pinned upstream behaviour (knative.dev/func pkg/functions/invoke.go
    # sendEvent): in cloudevent format only an "undelivered" result is an
    # error; a 500 answer (and, observed, even a refused connection) exits 0
    # with no output. Check the server side instead of func's exit code.
    proc = invoke(fn_dir, failing_server.url, "--format", "cloudevent")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""
    assert failing_server.next_request()["method"] == "POST"


def test_func_writes_run_data_into_function_dir(
    invoke: Invoke, fn_dir: Path, server: RecordingServer
) -> None:
    # Upstream behaviour: loading a function (fn.NewFunction) creates .func/
    # and a .gitignore containing "/.func" in the function directory.
    proc = invoke(fn_dir, server.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (fn_dir / ".func").is_dir()
    assert "/.func" in (fn_dir / ".gitignore").read_text()


def test_funcyamlcheck_leaves_function_dir_untouched(func_bin: Path, fn_dir: Path) -> None:
    before = sorted(p.name for p in fn_dir.iterdir())
    proc = subprocess.run([str(func_bin / "funcyamlcheck"), str(fn_dir)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in fn_dir.iterdir()) == before
