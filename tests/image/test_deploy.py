"""The README's deploy path for eventing/: `kustomize edit set image` with the digest `make image`
pushed, then the build `kubectl apply -k` would apply (kustomize v5.7.1, the real one)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.image.conftest import REF
from tests.infra.dataplane import CACHE
from tests.infra.missing import unavailable
from tests.servers import ROOT

KUSTOMIZE = CACHE / "bin" / "kustomize"
REGISTRY = "registry.example.com/streamforge/queue-manager"


def test_kustomize_deploys_every_service_by_digest(tmp_path: Path) -> None:
    if not KUSTOMIZE.exists():
        unavailable(f"{KUSTOMIZE} missing: run tests/infra/dataplane/build.sh kustomize")
    digest_file = REF.parent / "digest"
    if not digest_file.exists():
        unavailable("no image digest: run `make image`")
    digest = digest_file.read_text().strip()
    overlay = tmp_path / "eventing"
    shutil.copytree(ROOT / "eventing", overlay)
    subprocess.run([str(KUSTOMIZE), "edit", "set", "image", f"streamforge/queue-manager={REGISTRY}@{digest}"],
                   cwd=overlay, check=True, capture_output=True)
    built = subprocess.run([str(KUSTOMIZE), "build", str(overlay)], check=True, capture_output=True, text=True)
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    services = [d for d in docs if d["kind"] == "Service" and d["apiVersion"].startswith("serving.knative.dev")]
    assert len(services) == 4
    for svc in services:
        (container,) = svc["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{REGISTRY}@{digest}", svc["metadata"]["name"]
        assert svc["metadata"]["namespace"] == "streamforge"
    assert "streamforge/queue-manager:latest" not in built.stdout
