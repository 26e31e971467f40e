"""The data-plane contract (protobuf JSON of ``DataPlaneContract``, proto/contract.proto of
eventing-kafka-broker v0.50.0) rendered from the manifests in eventing/ as parsed, the way
that release's Go controllers render it:

- KafkaSource: control-plane/pkg/reconciler/source/source.go (KafkaSource -> ConsumerGroup)
  and .../consumer/consumer.go (Consumer -> contract Resource with one Egress);
- KafkaSink: .../sink/kafka_sink.go (``getSinkContractResource``);
- Broker and Triggers: .../broker/broker.go (``reconcilerBrokerResource``) and
  .../trigger/trigger.go (``reconcileTriggerEgress``);
- delivery -> egressConfig: pkg/core/config/utils.go (``EgressConfigFromDelivery``,
  ``MergeEgressConfig``); auth: pkg/security/secrets_provider_net_spec.go.

Only addresses are swapped for local ones: bootstrap servers -> the local broker, every
``ref`` a destination resolves -> a URL from ``urls`` (keyed ``"<Kind>/<name>"``, e.g.
``"Service/queue-telemetry"``), and the Kafka auth -> the local broker's (``LocalAuth``).
UIDs, which a cluster would assign, are stable uuid5s of kind, namespace and name.

    source_contract(kafka_source, bootstrap_servers=..., urls=..., namespace=..., auth=...)
    sink_contract([kafka_sink, ...], bootstrap_servers=..., namespace=..., auth=...)
    source_resource(...), sink_resource(...)   # the one Resource each of those holds
    broker_contract(broker, triggers, bootstrap_servers=..., urls=..., namespace=..., auth=...)
    contract(*resources)                     # {"resources": [...]} (the harness sets generation)
    init_offsets_latest(admin_config, topics, group)   # what the controller does for `latest`
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
EVENTING = ROOT / "eventing"
NAMESPACE = "streamforge"
UID_NAMESPACE = uuid.UUID("6f1c2f8e-0d4b-4c1a-9a57-5f0c1b3e2d10")

# control-plane/config/eventing-kafka-broker/200-controller/500-controller.yaml
BROKER_DEFAULT_BACKOFF_DELAY_MS = 1000
# control-plane/pkg/reconciler/consumer/consumer.go passes 200 for sources
SOURCE_DEFAULT_BACKOFF_DELAY_MS = 200
# control-plane/pkg/apis/config/features.go defaults
TRIGGER_CONSUMER_GROUP = "knative-trigger-{namespace}-{name}"
BROKER_TOPIC = "knative-broker-{namespace}-{name}"


# -- manifests ---------------------------------------------------------------------------------

def manifests(name: str) -> list[dict[str, Any]]:
    """Every object of eventing/<name> (a multi-document YAML file)."""
    with open(EVENTING / name) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def manifest(name: str, kind: str, object_name: str | None = None) -> dict[str, Any]:
    """The one object of `kind` (and `object_name`) in eventing/<name>."""
    found = [d for d in manifests(name) if d["kind"] == kind
             and (object_name is None or d["metadata"]["name"] == object_name)]
    if len(found) != 1:
        raise LookupError(f"{len(found)} {kind} {object_name or ''} in eventing/{name}")
    return found[0]


def uid(kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, f"{kind}/{namespace}/{name}"))


def reference(obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"uuid": uid(obj["kind"], namespace, meta["name"]), "namespace": namespace, "name": meta["name"],
            "kind": obj["kind"], "groupVersion": obj["apiVersion"]}


def ingress_path(obj: Mapping[str, Any], namespace: str) -> str:
    """receiver.PathFromObject: /<namespace>/<name>."""
    return f"/{namespace}/{obj['metadata']['name']}"


# -- destinations and delivery -----------------------------------------------------------------

def resolve(destination: Mapping[str, Any], urls: Mapping[str, str]) -> str:
    """A duckv1.Destination as the resolver resolves it: a ref's address (here: from `urls`),
    with `uri` appended when both are given, or the `uri` alone."""
    ref, uri = destination.get("ref"), destination.get("uri")
    if ref is None:
        if not uri:
            raise ValueError(f"destination without ref or uri: {destination}")
        return str(uri)
    key = f"{ref['kind']}/{ref['name']}"
    if key not in urls:
        raise KeyError(f"no local URL for {key} (have {sorted(urls)})")
    base = urls[key]
    if uri:
        return base.rstrip("/") + "/" + str(uri).lstrip("/")
    return base


_ISO = re.compile(r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
                  r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def millis(duration: str | None, default: int) -> int:
    """DurationMillisFromISO8601String: an ISO-8601 duration (PT0.2S) in milliseconds."""
    if duration is None:
        return default
    m = _ISO.match(duration)
    if not m or duration in ("P", "PT"):
        raise ValueError(f"not an ISO-8601 duration: {duration!r}")
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    seconds = parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    return abs(round(seconds * 1000))


def egress_config(delivery: Mapping[str, Any] | None, urls: Mapping[str, str],
                  default_backoff_delay_ms: int) -> dict[str, Any] | None:
    """EgressConfigFromDelivery: None without a deadLetterSink, retry or timeout."""
    if not delivery or not any(k in delivery for k in ("deadLetterSink", "retry", "timeout")):
        return None
    config: dict[str, Any] = {}
    if "deadLetterSink" in delivery:
        config["deadLetter"] = resolve(delivery["deadLetterSink"], urls)
    if "retry" in delivery:
        config["retry"] = int(delivery["retry"])
        config["backoffDelay"] = str(millis(delivery.get("backoffDelay"), default_backoff_delay_ms))
        config["backoffPolicy"] = "Linear" if delivery.get("backoffPolicy") == "linear" else "Exponential"
    if "timeout" in delivery:
        config["timeout"] = str(millis(delivery["timeout"], 0))
    return config


def merge_egress_config(trigger: dict[str, Any] | None, broker: dict[str, Any] | None) -> dict[str, Any] | None:
    """MergeEgressConfig: the Trigger's values win, the Broker's fill what is unset (the
    backoff policy is always the Trigger's)."""
    if trigger is None:
        return broker
    if broker is None:
        return trigger
    merged = {k: trigger.get(k) or broker.get(k) for k in ("deadLetter", "retry", "backoffDelay", "timeout")}
    merged["backoffPolicy"] = trigger.get("backoffPolicy", "Exponential")
    return {k: v for k, v in merged.items() if v}


# -- auth --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalAuth:
    """The local broker's security, standing in for what the manifests' secrets say.

    ``protocol``: PLAINTEXT (the contract then says ``absentAuth``) or SASL_PLAINTEXT (the
    local broker has no TLS, so the manifests' ``tls`` and ``ca.crt`` are dropped). With
    SASL, ``secret`` is the Secret the data plane will read from the API server (the one the
    manifests name, created there by the test): its ``metadata`` (uid, resourceVersion,
    namespace) and the keys it holds (``data``), as the controller sees it."""

    protocol: str = "PLAINTEXT"
    secret: Mapping[str, Any] | None = None
    keys: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, broker: Any, secret: Mapping[str, Any] | None = None) -> LocalAuth:
        """For a tests.infra.kafka_broker.KafkaBroker."""
        if not broker.sasl:
            return cls()
        if secret is None:
            raise ValueError("a SASL broker needs the Secret the data plane reads")
        keys = frozenset(k for k, v in {**secret.get("data", {}), **secret.get("stringData", {})}.items() if v)
        return cls("SASL_PLAINTEXT", secret, keys)

    def secret_reference(self) -> dict[str, Any]:
        assert self.secret is not None
        meta = self.secret["metadata"]
        return {"uuid": meta.get("uid", ""), "namespace": meta["namespace"], "name": meta["name"],
                "version": meta.get("resourceVersion", "")}


# SecretField of contract.proto, in the order of ResolveAuthContextFromNetSpec's securityFields
_NET_FIELDS = (("tls", "cert", "USER_CRT"), ("tls", "key", "USER_KEY"), ("tls", "caCert", "CA_CRT"),
               ("sasl", "type", "SASL_MECHANISM"), ("sasl", "user", "USER"), ("sasl", "password", "PASSWORD"))


def net_spec_auth(net: Mapping[str, Any] | None, auth: LocalAuth) -> dict[str, Any]:
    """A KafkaSource's ``net`` as ResolveAuthContextFromNetSpec renders it (multiAuthSecret:
    the protocol from sasl/tls.enable, one reference per Secret with each non-empty key
    referenced), with TLS dropped for the local broker; ``absentAuth`` for a PLAINTEXT one."""
    if auth.protocol == "PLAINTEXT":
        return {"absentAuth": {}}
    net = net or {}
    if not net.get("sasl", {}).get("enable"):
        raise ValueError("the local broker wants SASL but the manifest's net.sasl is not enabled")
    assert auth.secret is not None
    by_secret: dict[str, list[dict[str, str]]] = {}
    for section, name, secret_field in _NET_FIELDS:
        if section == "tls":
            continue  # no TLS on the local broker
        ref = net.get(section, {}).get(name, {}).get("secretKeyRef")
        if not ref:
            continue
        if ref["name"] != auth.secret["metadata"]["name"]:
            raise ValueError(f"net.{section}.{name} names Secret {ref['name']}, the local one is "
                             f"{auth.secret['metadata']['name']}")
        if ref["key"] in auth.keys:
            by_secret.setdefault(ref["name"], []).append({"secretKey": ref["key"], "field": secret_field})
    references = [{"reference": auth.secret_reference(), "keyFieldReferences": fields}
                  for fields in by_secret.values()]
    return {"multiAuthSecret": {"protocol": auth.protocol, "references": references}}


def secret_auth(has_auth: bool, auth: LocalAuth) -> dict[str, Any]:
    """KafkaSink/Broker ``auth.secret.ref``: an ``authSecret`` reference (nothing when the
    local broker needs none: the data plane then uses PLAINTEXT)."""
    if auth.protocol == "PLAINTEXT" or not has_auth:
        return {}
    return {"authSecret": auth.secret_reference()}


# -- resources ---------------------------------------------------------------------------------

def source_contract(source: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
    """The contract of one KafkaSource (keywords: those of ``source_resource``)."""
    return contract(source_resource(source, **kw))


def source_resource(source: Mapping[str, Any], *, bootstrap_servers: str, urls: Mapping[str, str],
                    namespace: str = NAMESPACE, auth: LocalAuth | None = None) -> dict[str, Any]:
    """A KafkaSource's contract Resource (ConsumerGroup -> Consumer -> Resource).

    ``spec.bootstrapServers`` is replaced by `bootstrap_servers`; ``initialOffset`` is not in
    the contract (the controller commits the offsets first: ``init_offsets_latest``)."""
    auth = auth or LocalAuth()
    spec = source["spec"]
    delivery = spec.get("delivery")
    if delivery is None:  # source.go's default DeliverySpec
        delivery = {"retry": 10, "backoffPolicy": "exponential", "backoffDelay": "PT0.3S", "timeout": "PT600S"}
    ordering = spec.get("ordering", "ordered")
    ref = reference(source, namespace)
    consumer_uid = uid("Consumer", namespace, source["metadata"]["name"])
    egress: dict[str, Any] = {
        "consumerGroup": spec["consumerGroup"],
        "destination": resolve(spec["sink"], urls),
        "discardReply": {},  # ReplyStrategy NoReply: a source never replies
        "uid": consumer_uid,
        "deliveryOrder": "ORDERED" if ordering == "ordered" else "UNORDERED",
        "keyType": _key_type(source),
        "reference": ref,
        "vReplicas": int(spec.get("consumers", 1)),
        "featureFlags": {},
    }
    config = egress_config(delivery, urls, SOURCE_DEFAULT_BACKOFF_DELAY_MS)
    if config is not None:
        egress["egressConfig"] = config
    resource: dict[str, Any] = {
        "uid": consumer_uid,
        "topics": list(spec["topics"]),
        "bootstrapServers": bootstrap_servers,
        "egresses": [egress],
        "reference": ref,
        "featureFlags": {},
        **net_spec_auth(spec.get("net"), auth),
    }
    overrides = spec.get("ceOverrides")
    if overrides is not None:
        resource["cloudEventOverrides"] = {"extensions": dict(overrides.get("extensions") or {})}
    return resource


def _key_type(source: Mapping[str, Any]) -> str:
    """The ``kafkasources.sources.knative.dev/key-type`` label (KeyTypeFromString)."""
    label = (source["metadata"].get("labels") or {}).get("kafkasources.sources.knative.dev/key-type", "")
    return {"int": "Integer", "float": "Double", "byte-array": "ByteArray"}.get(label, "String")


def sink_resource(sink: Mapping[str, Any], *, bootstrap_servers: str, namespace: str = NAMESPACE,
                  auth: LocalAuth | None = None) -> dict[str, Any]:
    """getSinkContractResource: topic, ingress /<ns>/<name> with its content mode."""
    auth = auth or LocalAuth()
    spec = sink["spec"]
    return {
        "uid": uid("KafkaSink", namespace, sink["metadata"]["name"]),
        "topics": [spec["topic"]],
        "ingress": {"path": ingress_path(sink, namespace),
                    "contentMode": "STRUCTURED" if spec.get("contentMode") == "structured" else "BINARY"},
        "featureFlags": {},
        "bootstrapServers": bootstrap_servers,
        "reference": reference(sink, namespace),
        **secret_auth(bool((spec.get("auth") or {}).get("secret")), auth),
    }


def sink_contract(sinks: Iterable[Mapping[str, Any]], **kw: Any) -> dict[str, Any]:
    return contract(*(sink_resource(s, **kw) for s in sinks))


def broker_contract(broker: Mapping[str, Any], triggers: Iterable[Mapping[str, Any]], *, bootstrap_servers: str,
                    urls: Mapping[str, str], namespace: str = NAMESPACE, auth: LocalAuth | None = None,
                    config_map: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One Resource for a Kafka Broker (topic knative-broker-<ns>-<name>, ingress /<ns>/<name>,
    the Broker's delivery as egressConfig) with one Egress per Trigger of that broker (consumer
    group knative-trigger-<ns>-<name>, ``filter.attributes`` or ``dialectedFilter`` from
    ``filters``, delivery merged Trigger over Broker, ordering from the
    ``kafka.eventing.knative.dev/delivery.order`` annotation). `config_map`: the Broker's
    spec.config ConfigMap (only its ``auth.secret.ref.name`` matters here)."""
    auth = auth or LocalAuth()
    name = broker["metadata"]["name"]
    broker_config = egress_config(broker["spec"].get("delivery"), urls, BROKER_DEFAULT_BACKOFF_DELAY_MS)
    has_secret = bool(config_map and (config_map.get("data") or {}).get("auth.secret.ref.name"))
    resource: dict[str, Any] = {
        "uid": uid("Broker", namespace, name),
        "topics": [broker_topic(broker, namespace)],
        "ingress": {"path": ingress_path(broker, namespace)},
        "featureFlags": {},
        "bootstrapServers": bootstrap_servers,
        "reference": reference(broker, namespace),
        **secret_auth(has_secret, auth),
        "egresses": [],
    }
    if broker_config is not None:
        resource["egressConfig"] = broker_config
    for trigger in triggers:
        if trigger["spec"]["broker"] != name:
            continue
        resource["egresses"].append(trigger_egress(trigger, broker_config, urls=urls, namespace=namespace))
    return contract(resource)


def broker_topic(broker: Mapping[str, Any], namespace: str = NAMESPACE) -> str:
    return BROKER_TOPIC.format(namespace=namespace, name=broker["metadata"]["name"])


def trigger_egress(trigger: Mapping[str, Any], broker_config: dict[str, Any] | None, *, urls: Mapping[str, str],
                   namespace: str = NAMESPACE) -> dict[str, Any]:
    meta, spec = trigger["metadata"], trigger["spec"]
    egress: dict[str, Any] = {
        "destination": resolve(spec["subscriber"], urls),
        "consumerGroup": TRIGGER_CONSUMER_GROUP.format(namespace=namespace, name=meta["name"]),
        "uid": uid("Trigger", namespace, meta["name"]),
        "reference": {"uuid": uid("Trigger", namespace, meta["name"]), "namespace": namespace,
                      "name": meta["name"]},
    }
    if spec.get("filters"):
        egress["dialectedFilter"] = [_dialected(f) for f in spec["filters"]]
    elif (spec.get("filter") or {}).get("attributes") is not None:
        egress["filter"] = {"attributes": dict(spec["filter"]["attributes"])}
    config = merge_egress_config(egress_config(spec.get("delivery"), urls, BROKER_DEFAULT_BACKOFF_DELAY_MS),
                                 broker_config)
    if config is not None:
        egress["egressConfig"] = config
    order = (meta.get("annotations") or {}).get("kafka.eventing.knative.dev/delivery.order")
    if order is not None:
        if order.lower() not in ("ordered", "unordered"):
            raise ValueError(f"invalid delivery.order annotation {order!r}")
        egress["deliveryOrder"] = order.upper()
    return egress


def _dialected(f: Mapping[str, Any]) -> dict[str, Any]:
    """contract.FromSubscriptionFilter."""
    for key in ("exact", "prefix", "suffix"):
        if key in f:
            return {key: {"attributes": dict(f[key])}}
    if "all" in f:
        return {"all": {"filters": [_dialected(x) for x in f["all"]]}}
    if "any" in f:
        return {"any": {"filters": [_dialected(x) for x in f["any"]]}}
    if "not" in f:
        return {"not": {"filter": _dialected(f["not"])}}
    if "sql" in f:
        return {"cesql": {"expression": f["sql"]}}
    raise ValueError(f"unknown subscription filter {f}")


def contract(*resources: Mapping[str, Any]) -> dict[str, Any]:
    """A Contract of these resources (or merge several contracts' resources: pass
    ``*c["resources"]``)."""
    out: list[dict[str, Any]] = []
    for r in resources:
        if "resources" in r:
            out.extend(r["resources"])
        else:
            out.append(dict(r))
    return {"resources": out}


# -- what the controller does beside the contract ----------------------------------------------

def init_offsets_latest(admin_config: Mapping[str, Any], topics: Iterable[str], group: str) -> dict[Any, int]:
    """pkg/kafka/offset/offsets.go InitOffsets, run by the ConsumerGroup reconciler when a
    KafkaSource says ``initialOffset: latest``: every partition of `topics` without a
    committed offset for `group` gets the partition's end offset committed, before the
    dispatcher starts consuming. Returns what was committed."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(**admin_config, group_id=group, enable_auto_commit=False)
    try:
        tps = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        ends = consumer.end_offsets(tps)
        todo = {tp: OffsetAndMetadata(ends[tp], "", -1) for tp in tps if consumer.committed(tp) is None}
        if todo:
            consumer.commit(todo)
        return {tp: o.offset for tp, o in todo.items()}
    finally:
        consumer.close()
