"""The Kafka Broker and its Triggers as users deploy them, with Knative's own data plane.

A ``BrokerStack`` runs, on the real Kafka broker:

- the functions each Trigger of eventing/triggers.yaml points at, one functions-framework
  process per subscriber Service (the function that Service runs: its ``QM_FUNCTION`` in
  eventing/services.yaml), plus ``status`` for queries; all share one local state store;
- a RecordingProxy in front of each subscriber (what the dispatcher sent it, and the status
  it got back), at the address the Trigger's subscriber resolves to;
- the broker topic created as the controller creates it (``knative-broker-<ns>-<name>``,
  partitions from the Broker's ConfigMap), and each Trigger's consumer group given the end
  offsets before the dispatcher starts (InitOffsets: the data plane's consumers start at
  ``latest``);
- Knative's ``receiver-loom`` (the Broker ingress) and ``dispatcher-loom`` (one egress per
  Trigger), with the contract rendered from eventing/broker.yaml and eventing/triggers.yaml
  as parsed (tests/infra/dataplane/contract.py). Only addresses differ: the local Kafka
  broker (PLAINTEXT, one node: replication factor 1 instead of the ConfigMap's, and no auth
  Secret, unless the test gives one: ``auth``), and the proxies' URLs for the subscriber
  Services.

The namespace is the one eventing/kustomization.yaml applies everything to.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage, from_binary
from kafka import KafkaConsumer, TopicPartition

from tests.infra.dataplane import contract as dpc
from tests.infra.dataplane.knative import Dispatcher, Receiver
from tests.infra.kafka_broker import KafkaBroker
from tests.integration.kafka_support import Exchange, RecordingProxy, read_records
from tests.servers import FunctionServer, base_env
from tests.waiting import wait_until


def deployed_namespace() -> str:
    with open(dpc.EVENTING / "kustomization.yaml") as f:
        return str(yaml.safe_load(f)["namespace"])


def function_of(service: dict[str, Any]) -> str:
    """The function a Knative Service of eventing/services.yaml runs (its QM_FUNCTION)."""
    env = {e["name"]: e.get("value") for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    return str(env["QM_FUNCTION"])


class BrokerStack:
    """`namespace`: the Broker's (default: where eventing/kustomization.yaml applies it).
    `auth`, `kubeconfig`: for a SASL broker, the Secret the Broker's ConfigMap names, as
    created by the test in `namespace` on the control plane `kubeconfig` points at (the data
    plane reads it from there)."""

    def __init__(self, kafka: KafkaBroker, work: Path, *, namespace: str | None = None,
                 auth: dpc.LocalAuth | None = None, kubeconfig: Path | None = None) -> None:
        self.kafka = kafka
        self.work = work
        self.namespace = namespace or deployed_namespace()
        self.auth = auth
        self.kubeconfig = kubeconfig
        self.broker = dpc.manifest("broker.yaml", "Broker")
        config = self.broker["spec"]["config"]
        assert config["kind"] == "ConfigMap", config
        self.config_map = dpc.manifest("broker.yaml", "ConfigMap", config["name"])
        self.triggers = [t for t in dpc.manifests("triggers.yaml")
                         if t["kind"] == "Trigger" and t["spec"]["broker"] == self.broker["metadata"]["name"]]
        self.services = {s["metadata"]["name"]: s for s in dpc.manifests("services.yaml") if s["kind"] == "Service"}
        self.topic = dpc.broker_topic(self.broker, self.namespace)
        self.partitions = int(self.config_map["data"]["default.topic.partitions"])
        self.functions: dict[str, FunctionServer] = {}  # by function name
        self.proxies: dict[str, RecordingProxy] = {}  # by Trigger name
        self.trigger_function: dict[str, str] = {}  # Trigger name -> function name
        self.status: FunctionServer | None = None
        self.receiver: Receiver | None = None
        self.dispatcher: Dispatcher | None = None
        self.contract: dict[str, Any] = {}

    # -- bring-up -------------------------------------------------------------------------------

    def start(self) -> BrokerStack:
        env = base_env(self.work / "local")
        urls: dict[str, str] = {}
        for trigger in self.triggers:
            ref = trigger["spec"]["subscriber"]["ref"]
            assert ref["kind"] == "Service", ref
            function = function_of(self.services[ref["name"]])
            server = self.functions.get(function)
            if server is None:
                server = self.functions[function] = FunctionServer(function, env, self.work).start()
            proxy = self.proxies[trigger["metadata"]["name"]] = RecordingProxy(server.url)
            self.trigger_function[trigger["metadata"]["name"]] = function
            urls[f"Service/{ref['name']}"] = proxy.url
        self.status = FunctionServer("status", env, self.work).start()

        self.kafka.create_topic(self.topic, self.partitions, exist_ok=True)
        self.contract = dpc.broker_contract(self.broker, self.triggers, bootstrap_servers=self.kafka.bootstrap_servers,
                                            urls=urls, namespace=self.namespace, config_map=self.config_map,
                                            auth=self.auth)
        for egress in self.egresses:
            dpc.init_offsets_latest(self.kafka.internal_client_config(), [self.topic], egress["consumerGroup"])
            missing = [p for p, o in self.committed(egress["consumerGroup"]).items() if o is None]
            assert not missing, f"offsets of {egress['consumerGroup']} not initialised on partitions {missing}"

        kubeconfig = self.kubeconfig
        receiver = self.receiver = Receiver("broker", self.contract, self.kafka, self.work, kubeconfig=kubeconfig)
        receiver.start()
        receiver.wait_ingress(self.resource["ingress"]["path"])
        dispatcher = self.dispatcher = Dispatcher("broker", self.contract, self.kafka, self.work,
                                                  kubeconfig=kubeconfig)
        dispatcher.start()
        for egress in self.egresses:
            dispatcher.wait_egress(egress["consumerGroup"])
        return self

    def close(self) -> None:
        for part in (self.dispatcher, self.receiver):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        for proxy in self.proxies.values():
            with contextlib.suppress(Exception):
                proxy.close()
        for server in [*self.functions.values(), self.status]:
            if server is not None and server.proc is not None:
                server.stop()

    # -- the contract ---------------------------------------------------------------------------

    @property
    def resource(self) -> dict[str, Any]:
        (resource,) = self.contract["resources"]
        return resource

    @property
    def egresses(self) -> list[dict[str, Any]]:
        return list(self.resource["egresses"])

    def group_of(self, trigger: str) -> str:
        (egress,) = [e for e in self.egresses if e["reference"]["name"] == trigger]
        return str(egress["consumerGroup"])

    def trigger_for(self, function: str) -> str:
        (name,) = [t for t, f in self.trigger_function.items() if f == function]
        return name

    @property
    def ingress_url(self) -> str:
        assert self.receiver is not None
        return self.receiver.url + self.resource["ingress"]["path"]

    # -- in: the Broker ingress -----------------------------------------------------------------

    def post(self, attributes: dict[str, Any], data: Any, *, mode: str = "binary", raw: bytes | None = None) -> int:
        """POST one CloudEvent to the Broker ingress (binary or structured mode); the status.
        `raw`: this body instead of `data` as JSON (binary mode only)."""
        event = CloudEvent({"datacontenttype": "application/json", **attributes}, data)
        headers, body = (to_binary if mode == "binary" else to_structured)(event)
        if raw is not None:
            assert mode == "binary"
            body = raw
        req = urllib.request.Request(self.ingress_url, data=body, method="POST", headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    # -- what the subscribers got ---------------------------------------------------------------

    def deliveries(self, trigger: str, ce_id: str | None = None) -> list[Exchange]:
        """What the dispatcher POSTed to `trigger`'s subscriber (of the event `ce_id`)."""
        return [ex for ex in self.proxies[trigger].requests() if ce_id is None or ex.headers.get("ce-id") == ce_id]

    def wait_delivered(self, trigger: str, ce_id: str, n: int = 1, timeout: float = 60.0) -> list[Exchange]:
        """Until `trigger`'s subscriber answered `n` deliveries of `ce_id` (the functions
        answer every request with a body)."""
        def answered() -> list[Exchange] | None:
            got = [ex for ex in self.deliveries(trigger, ce_id) if ex.status is not None and ex.response]
            return got if len(got) >= n else None
        return wait_until(f"{n} deliveries of {ce_id} to {trigger} answered", answered, timeout, interval=0.05)

    # -- the broker topic -----------------------------------------------------------------------

    def records(self, until: Any = None, timeout: float = 30.0) -> list[tuple[Any, CloudEvent]]:
        """Every record of the broker topic, with the CloudEvent it holds."""
        recs = read_records(self.kafka.internal_client_config(), self.topic,
                            until=None if until is None else (lambda rs: until([(r, as_event(r)) for r in rs])),
                            timeout=timeout)
        return [(r, as_event(r)) for r in recs]

    def wait_records(self, what: str, match: Any, n: int = 1, timeout: float = 60.0) -> list[tuple[Any, CloudEvent]]:
        """The broker topic's records whose event satisfies `match`, once there are `n`."""
        def enough(pairs: list[tuple[Any, CloudEvent]]) -> bool:
            return len([p for p in pairs if match(p[1])]) >= n
        try:
            pairs = self.records(until=enough, timeout=timeout)
        except AssertionError as e:
            raise AssertionError(f"{what}: {e}") from None
        return [p for p in pairs if match(p[1])]

    def committed(self, group: str) -> dict[int, int | None]:
        consumer = KafkaConsumer(**self.kafka.internal_client_config(), group_id=group, enable_auto_commit=False)
        try:
            parts = wait_until(f"partitions of {self.topic}", lambda: consumer.partitions_for_topic(self.topic), 30)
            return {p: consumer.committed(TopicPartition(self.topic, p)) for p in sorted(parts)}
        finally:
            consumer.close()

    def wait_handled(self, records: list[Any], timeout: float = 60.0) -> None:
        """Until every Trigger's consumer group committed past each of `records`: each egress
        of the dispatcher is done with them (filtered out, delivered, or given up on)."""
        for egress in self.egresses:
            group = egress["consumerGroup"]

            def done(group: str = group) -> bool:
                committed = self.committed(group)
                return all((committed.get(r.partition) or 0) > r.offset for r in records)

            wait_until(f"{group} past {[(r.partition, r.offset) for r in records]}", done, timeout, interval=0.5)

    def sent(self, ce_id: str, n: int = 1, timeout: float = 60.0) -> list[Any]:
        """The `n` records the ingress wrote for the event `ce_id`."""
        return [r for r, _ in self.wait_records(f"{n} records of {ce_id} in {self.topic}",
                                                lambda e: e["id"] == ce_id, n, timeout)]

    # -- state ----------------------------------------------------------------------------------

    def queue(self, queue_id: str) -> tuple[int, Any]:
        assert self.status is not None
        return self.status.call("GET", f"/queues/{queue_id}")

    def queues(self, **query: str) -> dict[str, Any]:
        assert self.status is not None
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        code, body = self.status.call("GET", f"/queues?{qs}")
        assert code == 200, body
        return body


def create_kafka_secret(kube: Any, stack: BrokerStack, user: str) -> dict[str, Any]:
    """The Secret the Broker's ConfigMap names (``auth.secret.ref.name``), from
    eventing/secrets.example.yaml with the local SASL broker's values (no TLS there, so no
    ``ca.crt``), created in the test's namespace; returned as the API server has it."""
    from kubernetes import client

    name = stack.config_map["data"]["auth.secret.ref.name"]
    template = dpc.manifest("secrets.example.yaml", "Secret", name)
    values = {**template["stringData"], "user": user, "password": stack.kafka.users[user],
              "sasl.mechanism": stack.kafka.sasl, "protocol": "SASL_PLAINTEXT"}
    values.pop("ca.crt")
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=values)
    created = kube.core.create_namespaced_secret(kube.namespace, body)
    return {"metadata": {"name": created.metadata.name, "namespace": created.metadata.namespace,
                         "uid": created.metadata.uid, "resourceVersion": created.metadata.resource_version},
            "data": dict(created.data or {})}


def _data(value: bytes | None) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return value  # the ingress takes any bytes as data; keep what is not JSON as it is


def as_event(record: Any) -> CloudEvent:
    """A broker-topic record as the CloudEvent it holds (the data plane writes the Kafka
    binary binding)."""
    return from_binary(KafkaMessage(headers=dict(record.headers or []), key=record.key, value=record.value),
                       data_unmarshaller=_data)


def reply_of(exchange: Exchange) -> dict[str, Any]:
    """The JSON envelope a subscriber answered a delivery with."""
    return json.loads(exchange.response)
