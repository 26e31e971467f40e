"""Knative's own Kafka data plane (eventing-kafka-broker v0.50.0) as local processes:
``knative`` runs the dispatcher and receiver jars that build.sh builds, ``contract``
renders their configuration from the manifests in eventing/ as the Go controllers do."""

import os
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamforge-qm" / "dataplane"
"""Where build.sh puts what it builds (``build.sh --print-dir`` says the same)."""
