"""func.yaml: valid for func v0.49.2 (its own loader and JSON schema), and says what the
deployment needs: the functions-framework build, the seed's health paths, scale to zero,
credentials only as Secret references."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.knative.conftest import FUNC_YAML, func_yaml, literal_envs
from tests.servers import ROOT


def test_funcyamlcheck_accepts_func_yaml(func_bin: Path) -> None:
    proc = subprocess.run([str(func_bin / "funcyamlcheck"), str(FUNC_YAML)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"OK {FUNC_YAML}"
    assert "no JSON schema found" not in proc.stderr


def test_build_is_functions_framework_via_google_buildpacks() -> None:
    f = func_yaml()
    assert f["runtime"] == "python"
    assert f["build"]["builder"] == "pack"
    assert f["build"]["builderImages"] == {"pack": "gcr.io/buildpacks/builder:google-22"}
    assert {e["name"]: e["value"] for e in f["build"]["buildEnvs"]} == {
        "GOOGLE_FUNCTION_TARGET": "handle",
        "GOOGLE_FUNCTION_SOURCE": "functions/main.py",
        "GOOGLE_FUNCTION_SIGNATURE_TYPE": "http",
        "GOOGLE_PYTHON_VERSION": "3.11.x",
    }
    assert (ROOT / "functions" / "main.py").is_file()


def test_runtime_env_is_the_all_in_one_function() -> None:
    env = literal_envs()
    assert env["QM_FUNCTION"] == "all"
    assert env["FUNCTION_USE_ASGI"] == "true"
    assert (env["FUNCTION_TARGET"], env["FUNCTION_SOURCE"]) == ("handle", "functions/main.py")
    assert func_yaml()["invoke"] == "http"


def test_deploy_probes_scale_and_resources() -> None:
    d = func_yaml()["deploy"]
    assert d["healthEndpoints"] == {"liveness": "/health/live", "readiness": "/health/ready"}
    scale = d["options"]["scale"]
    assert scale["min"] == 0 and scale["max"] >= 1 and scale["metric"] == "concurrency" and scale["target"] > 0
    res = d["options"]["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]
    assert res["limits"]["concurrency"] >= scale["target"]
    # func copies deploy.annotations onto the Service's own metadata, where Knative rejects autoscaling ones
    assert not [k for k in d.get("annotations", {}) if k.startswith("autoscaling.knative.dev/")]
    assert d["serviceAccountName"] == "queue-manager"  # eventing/rbac.yaml


def test_credentials_are_secret_references_only() -> None:
    envs = func_yaml()["run"]["envs"]
    by_name = {e["name"]: e["value"] for e in envs if "name" in e}
    assert by_name["KAFKA_USER"] == "{{ secret:streamforge-kafka:user }}"
    assert by_name["KAFKA_PASSWORD"] == "{{ secret:streamforge-kafka:password }}"
    assert by_name["ARANGO_USER"] == "{{ secret:streamforge-arango:user }}"
    assert by_name["ARANGO_PASSWORD"] == "{{ secret:streamforge-arango:password }}"
    assert {"value": "{{ configMap:queue-manager-config }}"} in envs
    # every plain value is a setting, not a credential; the volume names a Secret, holds none
    for name in literal_envs():
        assert not re.search(r"(?i)user|password|secret|token|key", name), name
    assert func_yaml()["run"]["volumes"] == [{"secret": "streamforge-kafka", "path": "/etc/streamforge/kafka-ca"}]

def test_func_build_wraps_python_in_func_python_scaffolding(func_bin: Path, func_env: dict[str, str],
                                                              tmp_path: Path) -> None:
    """Pins upstream behaviour (knative.dev/func v0.49.2 pkg/buildpacks): for `runtime: python`
    `func build` writes func-python scaffolding (`python -m service.main`, importing a module
    `function`) and a pre-buildpack moves the sources into fn/. That replaces the
    functions-framework entry point, so the image is built from the Containerfile and deployed by
    digest (README, Deployment). Stops before building: no docker daemon in func_env."""
    app = tmp_path / "app"
    app.mkdir()
    for name in ("func.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, app / name)
    for name in ("functions", "shared"):
        shutil.copytree(ROOT / name, app / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([str(func_bin / "func"), "build", "--path", str(app), "--image",
                           "registry.example.com/streamforge/queue-manager:test"],
                          capture_output=True, text=True, timeout=120, env=func_env)
    assert proc.returncode != 0
    assert "gcr.io/buildpacks/builder:google-22" in proc.stderr  # builderImages.pack is what func uses
    build = app / ".func" / "build"
    assert (build / "Procfile").read_text() == "web: python -m service.main\n"
    assert "from function import new" in (build / "service" / "main.py").read_text()
    assert "func-python" in (build / "pyproject.toml").read_text()
