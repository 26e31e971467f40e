"""The core (non-Knative) objects in eventing/ are valid Kubernetes objects.

Each document goes through the real API server with a server-side dry run
(`dryRun=All`: decoding, defaulting, validation and admission, no storage).
The Knative documents need Knative's CRDs and are validated elsewhere
(tests/eventing, knvalidate).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import utils
from kubernetes.utils import FailToCreateError

from shared.core import constants
from shared.core.config import Settings
from tests.conftest import ROOT
from tests.integration.kubeutil import Kube, apply, status_of, yaml_documents

pytestmark = pytest.mark.kube

EVENTING = ROOT / "eventing"
CORE = {
    "rbac.yaml": ["ServiceAccount", "Role", "RoleBinding", "ServiceAccount", "Role", "RoleBinding"],
    "rbac-cluster.yaml": ["ClusterRole", "ClusterRoleBinding"],
    "config.yaml": ["ConfigMap"],
    "namespace.yaml": ["Namespace"],
    "secrets.example.yaml": ["Secret", "Secret", "Secret"],
}


def dry_run(kube: Kube, doc: dict[str, Any]) -> Any:

    [obj] = utils.create_from_dict(kube.api, doc, namespace=kube.namespace, dry_run="All")
    return obj


@pytest.mark.parametrize("filename", sorted(CORE))
def test_core_manifests_pass_the_api_servers_validation(kube: Kube, filename: str) -> None:
    docs = yaml_documents(EVENTING / filename)
    assert [d["kind"] for d in docs] == CORE[filename]
    answers = apply(kube.api, EVENTING / filename, kube.namespace, dry_run="All")
    assert [(o.kind, o.metadata.name) for o in answers] == [(d["kind"], d["metadata"]["name"]) for d in docs]
    for obj in answers:
        assert obj.metadata.uid and obj.metadata.creation_timestamp  # the server built the object ...

    # ... and stored none of it
    core, rbac = kube.core, k8s.RbacAuthorizationV1Api(kube.api)
    readers = {
        "ServiceAccount": lambda n: core.read_namespaced_service_account(n, kube.namespace),
        "Role": lambda n: rbac.read_namespaced_role(n, kube.namespace),
        "RoleBinding": lambda n: rbac.read_namespaced_role_binding(n, kube.namespace),
        "ConfigMap": lambda n: core.read_namespaced_config_map(n, kube.namespace),
        "Secret": lambda n: core.read_namespaced_secret(n, kube.namespace),
        "Namespace": lambda n: core.read_namespace(n),
        "ClusterRole": lambda n: rbac.read_cluster_role(n),
        "ClusterRoleBinding": lambda n: rbac.read_cluster_role_binding(n),
    }
    for doc in docs:
        name = doc["metadata"]["name"]
        assert status_of(lambda r=readers[doc["kind"]], n=name: r(n)) == 404, f"{doc['kind']} {name} was stored"


def test_config_map_is_what_the_functions_read(kube: Kube) -> None:
    [doc] = yaml_documents(EVENTING / "config.yaml")
    data = dry_run(kube, doc).data
    assert data == doc["data"]  # nothing dropped or rewritten by the server
    source = (ROOT / "shared" / "core" / "config.py").read_text()
    unknown = [k for k in data if f'"{k}"' not in source]
    assert not unknown, f"config.yaml sets variables shared/core/config.py never reads: {unknown}"
    settings = Settings.from_env(data)
    assert settings.jobs.launcher == "kubernetes" and settings.kafka.enabled and settings.arango.enabled
    assert sorted(settings.jobs.images) == sorted(constants.TARGETS)
    assert all(re.fullmatch(r"[\w./-]+:[\w.-]+", image) for image in settings.jobs.images.values())


def test_secret_templates_have_the_keys_jobs_read(kube: Kube) -> None:
    secrets = {d["metadata"]["name"]: dry_run(kube, d) for d in yaml_documents(EVENTING / "secrets.example.yaml")}
    jobs_settings = Settings.from_env({}).jobs
    assert {"user", "password", "ca.crt"} <= set(secrets[jobs_settings.kafka_secret].data)
    assert {"user", "password"} <= set(secrets[jobs_settings.arango_secret].data)


@pytest.mark.parametrize("breakage", ["configmap-key", "rolebinding-roleref", "role-no-verbs"])
def test_dry_run_rejects_invalid_objects(kube: Kube, breakage: str) -> None:
    """The control: the same dry run refuses what a real cluster would refuse (each breakage is
    well-formed JSON of the right shape, so it is the API server, not the client, saying no)."""
    if breakage == "configmap-key":
        [doc] = yaml_documents(EVENTING / "config.yaml")
        doc["data"]["NOT A VALID KEY!"] = "x"
    else:
        docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml_documents(EVENTING / "rbac.yaml")}
        if breakage == "rolebinding-roleref":
            doc = docs[("RoleBinding", "queue-manager-jobs")]
            doc["roleRef"]["kind"] = "Deployment"  # well-formed, so only the server can refuse it
        else:
            doc = docs[("Role", "queue-manager-jobs")]
            doc["rules"][0]["verbs"] = []
    with pytest.raises(FailToCreateError) as e:
        dry_run(kube, doc)
    [error] = e.value.api_exceptions
    assert error.status == 422, error
