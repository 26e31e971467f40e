"""Knative's own Kafka data plane (eventing-kafka-broker v0.50.0) as local processes:
``knative`` runs the dispatcher and receiver jars that build.sh builds, ``contract``
renders their configuration from the manifests in eventing/ as the Go controllers do."""
