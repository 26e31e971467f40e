"""A local stand-in for Knative's ApiServerSource, for development and tests.

Watches the manager's Jobs and POSTs each change to a sink the way
ApiServerSource does in `Resource` mode: a binary-mode CloudEvent of type
`dev.knative.apiserver.resource.{add,update,delete}` whose data is the whole
Job. Production uses the ApiServerSource in eventing/apiserver-source.yaml.

    python -m shared.kube_watch --namespace streamforge --sink http://127.0.0.1:8080/
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from typing import Any

from kubernetes import client, watch

from shared import cluster, constants
from shared.config import Settings
from shared.delivery import Delivery, Sink

log = logging.getLogger("streamforge.kube_watch")
TYPES = {"ADDED": cluster.ADD, "MODIFIED": cluster.UPDATE, "DELETED": cluster.DELETE}


def to_delivery(kind: str, job: dict[str, Any], *, source: str) -> Delivery:
    meta = job.get("metadata") or {}
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": source,
        "ce-type": TYPES[kind],
        "ce-subject": f"/apis/batch/v1/namespaces/{meta.get('namespace')}/jobs/{meta.get('name')}",
        "content-type": "application/json",
    }
    return Delivery(headers, json.dumps(job).encode())


class JobWatcher:
    def __init__(self, api: client.ApiClient, namespace: str, sink: str, *, retries: int = 5) -> None:
        self.api = api
        self.namespace = namespace
        self.sink = Sink(sink)
        self.retries = retries
        self.source = api.configuration.host
        self.delivered = 0

    def _post(self, delivery: Delivery) -> None:
        for attempt in range(self.retries + 1):
            try:
                status, body, _ = self.sink.post(delivery)
            except OSError as e:
                status, body = None, str(e).encode()
            if status is not None and status < 500:
                self.delivered += 1
                return
            time.sleep(0.1 * 2**attempt)
        log.warning("gave up delivering %s: %s", delivery.headers["ce-subject"], body[:200])

    def run(self, stop: threading.Event) -> None:
        batch = client.BatchV1Api(self.api)
        selector = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}"
        version = ""
        while not stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(batch.list_namespaced_job, self.namespace, label_selector=selector,
                                      resource_version=version, timeout_seconds=5):
                    obj = self.api.sanitize_for_serialization(event["object"])
                    obj.setdefault("apiVersion", "batch/v1")
                    obj.setdefault("kind", "Job")
                    version = obj["metadata"].get("resourceVersion", version)
                    self._post(to_delivery(event["type"], obj, source=self.source))
                    if stop.is_set():
                        break
            except client.ApiException as e:
                if e.status == 410:  # resource version too old: list again from now
                    version = ""
                else:
                    log.warning("watch failed: %s", e)
                    time.sleep(0.5)
            finally:
                w.stop()


def main(argv: list[str] | None = None) -> None:
    from kubernetes import config

    jobs = Settings.from_env().jobs
    parser = argparse.ArgumentParser(description="Deliver Job changes as ApiServerSource does.")
    parser.add_argument("--namespace", default=jobs.namespace)
    parser.add_argument("--sink", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    api = config.new_client_from_config(config_file=jobs.kubeconfig or None)
    stop = threading.Event()
    try:
        JobWatcher(api, args.namespace, args.sink).run(stop)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
