"""The data-plane contracts rendered from eventing/ (tests/infra/dataplane/contract.py),
checked against what eventing-kafka-broker v0.50.0's controllers render for the same
objects (the expectations below are read off their Go code and its tests), without a broker."""

from __future__ import annotations

import copy

import pytest

from tests.infra.dataplane import contract as dpc

URLS = {"Service/queue-telemetry": "http://fn/telemetry", "KafkaSink/queue-control-dlq": "http://sink/dlq",
        "Service/queue-start": "http://fn/start", "Service/queue-stop": "http://fn/stop"}


def test_kafka_source_contract_follows_the_manifest() -> None:
    source = dpc.manifest("kafka-source.yaml", "KafkaSource")
    c = dpc.source_contract(source, bootstrap_servers="127.0.0.1:9092", urls=URLS)
    (resource,) = c["resources"]
    (egress,) = resource["egresses"]
    spec = source["spec"]
    assert resource["topics"] == spec["topics"] and resource["bootstrapServers"] == "127.0.0.1:9092"
    assert resource["absentAuth"] == {}, "the local broker is PLAINTEXT"
    assert egress["consumerGroup"] == spec["consumerGroup"] and egress["destination"] == "http://fn/telemetry"
    assert egress["deliveryOrder"] == "ORDERED" and egress["discardReply"] == {}
    assert egress["egressConfig"] == {"deadLetter": "http://sink/dlq", "retry": spec["delivery"]["retry"],
                                      "backoffDelay": "200", "backoffPolicy": "Exponential"}
    ref = egress["reference"]
    assert (ref["kind"], ref["name"], ref["groupVersion"]) == ("KafkaSource", "queue-control-telemetry",
                                                               "sources.knative.dev/v1beta1")
    unordered = copy.deepcopy(source)
    unordered["spec"]["ordering"] = "unordered"
    del unordered["spec"]["delivery"]
    (egress,) = dpc.source_contract(unordered, bootstrap_servers="b", urls=URLS)["resources"][0]["egresses"]
    assert egress["deliveryOrder"] == "UNORDERED"
    assert egress["egressConfig"] == {"retry": 10, "backoffDelay": "300", "backoffPolicy": "Exponential",
                                      "timeout": "600000"}, "source.go's default delivery"


def test_sasl_renders_a_multi_secret_reference_without_tls() -> None:
    source = dpc.manifest("kafka-source.yaml", "KafkaSource")
    secret = {"metadata": {"name": "streamforge-kafka", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"},
              "data": {"user": "x", "password": "y", "sasl.mechanism": "z", "ca.crt": ""}}

    class Broker:
        sasl = "PLAIN"

    auth = dpc.LocalAuth.of(Broker(), secret)
    resource = dpc.source_resource(source, bootstrap_servers="b", urls=URLS, auth=auth)
    (ref,) = resource["multiAuthSecret"]["references"]
    assert resource["multiAuthSecret"]["protocol"] == "SASL_PLAINTEXT"
    assert ref["reference"] == {"uuid": "u-1", "namespace": "ns", "name": "streamforge-kafka", "version": "7"}
    assert sorted((f["secretKey"], f["field"]) for f in ref["keyFieldReferences"]) == [
        ("password", "PASSWORD"), ("sasl.mechanism", "SASL_MECHANISM"), ("user", "USER")]


def test_kafka_sink_contract() -> None:
    sinks = dpc.manifests("kafka-sinks.yaml")
    c = dpc.sink_contract(sinks, bootstrap_servers="b")
    by_name = {r["reference"]["name"]: r for r in c["resources"]}
    assert set(by_name) == {"queue-events", "queue-control-dlq"}
    dlq = by_name["queue-control-dlq"]
    assert dlq["topics"] == ["queue-control-dlq"] and dlq["ingress"] == {"path": "/streamforge/queue-control-dlq",
                                                                          "contentMode": "BINARY"}
    assert dlq["reference"]["kind"] == "KafkaSink" and "absentAuth" not in dlq and "authSecret" not in dlq


def test_broker_contract_has_one_egress_per_trigger() -> None:
    broker = dpc.manifest("broker.yaml", "Broker")
    config = dpc.manifest("broker.yaml", "ConfigMap")
    triggers = dpc.manifests("triggers.yaml")
    (resource,) = dpc.broker_contract(broker, triggers, bootstrap_servers="b", urls=URLS,
                                      config_map=config)["resources"]
    assert resource["topics"] == ["knative-broker-streamforge-queue-manager"]
    assert resource["ingress"] == {"path": "/streamforge/queue-manager"}
    assert resource["egressConfig"] == {"retry": 5, "backoffDelay": "500", "backoffPolicy": "Exponential"}
    egresses = {e["reference"]["name"]: e for e in resource["egresses"]}
    assert set(egresses) == {"queue-start", "queue-stop"}
    start = egresses["queue-start"]
    assert start["consumerGroup"] == "knative-trigger-streamforge-queue-start"
    assert start["filter"] == {"attributes": {"type": "dev.streamforge.queue.start"}}
    assert start["destination"] == "http://fn/start"
    assert start["egressConfig"] == resource["egressConfig"], "the Broker's delivery, as the Trigger has none"


@pytest.mark.parametrize(("iso", "ms"), [("PT0.2S", 200), ("PT1M", 60000), ("P1DT1H", 90000000), ("PT600S", 600000)])
def test_iso8601_durations(iso: str, ms: int) -> None:
    assert dpc.millis(iso, 0) == ms


def test_trigger_delivery_overrides_the_brokers() -> None:
    merged = dpc.merge_egress_config({"retry": 1, "backoffPolicy": "Linear"},
                                     {"retry": 5, "backoffDelay": "500", "deadLetter": "http://d"})
    assert merged == {"retry": 1, "backoffDelay": "500", "deadLetter": "http://d", "backoffPolicy": "Linear"}
