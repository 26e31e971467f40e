"""Settings read from the environment once, at the edge of each process.

The names follow the seed service's `.env` (KAFKA_*, ARANGO_*, *_TOPIC);
the rest configure the Job launcher and the local embedded default.
Nothing else in the library reads `os.environ`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.core import constants


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from e


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, unit: str = "seconds") -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be a number of {unit}, got {raw!r}") from e
    if not value >= 0 or value == float("inf"):  # also refuses nan
        raise ValueError(f"{name} must be 0 or more {unit}, got {raw!r}")
    return value


def _retention(env: Mapping[str, str]) -> float:
    days = _seconds(env, "RETENTION_DAYS", 30.0, "days")
    if days > MAX_RETENTION_DAYS:
        raise ValueError(f"RETENTION_DAYS must be at most {MAX_RETENTION_DAYS} (0 keeps every queue hot)")
    return days


MAX_RETENTION_DAYS = 36500


def _json_object(env: Mapping[str, str], name: str) -> dict[str, object]:
    raw = env.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be a JSON object") from e
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object")
    return value


def _limits(env: Mapping[str, str]) -> dict[str, int]:
    limits = {str(k): int(v) for k, v in _json_object(env, "JOB_LIMITS").items()}  # type: ignore[call-overload]
    unknown = set(limits) - set(constants.TARGETS) - {"*"}
    if unknown or any(v < 1 for v in limits.values()):
        raise ValueError(f"JOB_LIMITS: targets must be among {constants.TARGETS} or '*', limits >= 1")
    return limits


def _priority_classes(env: Mapping[str, str]) -> dict[int, str]:
    """{"1-3": "low", "4-7": "normal", "8-10": "high"} -> {1: "low", ..., 10: "high"}."""
    classes: dict[int, str] = {}
    for span, name in _json_object(env, "JOB_PRIORITY_CLASSES").items():
        low, _, high = str(span).partition("-")
        for p in range(int(low), int(high or low) + 1):
            classes[p] = str(name)
    return classes


def _images(env: Mapping[str, str]) -> dict[str, str]:
    images = {t: f"streamforge/{t}:latest" for t in constants.TARGETS}
    if env.get("JOB_IMAGES"):
        try:
            images.update(json.loads(env["JOB_IMAGES"]))
        except (ValueError, TypeError) as e:
            raise ValueError("JOB_IMAGES must be a JSON object {target: image}") from e
    for target in constants.TARGETS:
        key = "JOB_IMAGE_" + target.upper().replace("-", "_")
        if env.get(key):
            images[target] = env[key]
    return images


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = ""
    """Comma-separated host:port list; empty means Kafka is not configured."""
    user: str = ""
    """SASL user (seed: KAFKA_USER); with a password, turns SASL on."""
    password: str = field(default="", repr=False)
    """SASL password (seed: KAFKA_PASSWORD); never logged."""
    ca_path: str = ""
    """CA bundle (seed: CA_PATH); given, the connection is SASL_SSL, else SASL_PLAINTEXT."""
    sasl_mechanism: str = "PLAIN"
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."""
    control_topic: str = "queue-control"
    """Telemetry in, stop commands out."""
    events_topic: str = "queue-events"
    """Queue lifecycle events out."""
    timeout_ms: int = 5000
    """Upper bound on a publish or a metadata fetch before the broker counts as down."""

    @property
    def enabled(self) -> bool:
        return bool(self.bootstrap_servers)


@dataclass(frozen=True)
class ArangoSettings:
    url: str = ""
    """ArangoDB endpoint; empty selects the embedded SQLite state store."""
    db: str = "streamforge"
    """Database holding the `queue_state` collection."""
    user: str = "root"
    """ArangoDB user."""
    password: str = field(default="", repr=False)
    """ArangoDB password; never logged."""
    timeout_s: float = 5.0
    """Request timeout before the store counts as down."""

    @property
    def enabled(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True)
class JobSettings:
    launcher: str = "local"
    """`kubernetes` launches Jobs; `local` only writes their manifests to `manifests_dir`."""
    namespace: str = "streamforge"
    """Namespace the Jobs run in."""
    kubeconfig: str = ""
    """Kubeconfig path; empty means in-cluster config (or ~/.kube/config outside a cluster)."""
    images: dict[str, str] = field(default_factory=dict)
    """Image per target (JOB_IMAGES JSON, or JOB_IMAGE_<TARGET>)."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of the Job containers."""
    service_account: str = ""
    """ServiceAccount the Jobs run as; empty for the namespace default."""
    backoff_limit: int = 2
    """Pod retries before a Job fails."""
    active_deadline_seconds: int = 0
    """Default run-time limit per Job; 0 means none (streaming Jobs run until stopped)."""
    ttl_seconds_after_finished: int = 3600
    """How long finished Jobs stay for inspection before Kubernetes removes them."""
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    memory_limit: str = "1Gi"
    kafka_secret: str = "streamforge-kafka"
    """Secret with keys `user`, `password` (and optional `ca.crt`) for the Jobs."""
    arango_secret: str = "streamforge-arango"
    """Secret with keys `user`, `password` for the Jobs."""
    manifests_dir: str = ".local/jobs"
    """Where the local launcher writes the manifests it would have applied."""
    limits: dict[str, int] = field(default_factory=dict)
    """Concurrent Jobs per target, and overall under "*" (JOB_LIMITS JSON); absent = unlimited."""
    priority_classes: dict[int, str] = field(default_factory=dict)
    """Queue priority (1-10) -> PriorityClass of its Jobs (JOB_PRIORITY_CLASSES, ranges allowed)."""
    pod_annotations: dict[str, str] = field(default_factory=dict)
    """Extra annotations on the Jobs' pods (JOB_POD_ANNOTATIONS JSON), e.g. for a mesh or a scheduler."""
    node_selector: dict[str, str] = field(default_factory=dict)
    """Where the Jobs' pods may run (JOB_NODE_SELECTOR JSON)."""
    lease_ttl_seconds: int = 300
    """A slot lease not renewed (by the Job's telemetry or the sweep) for this long is freed."""
    stop_grace_seconds: float = 5.0
    """Between the stop command on queue-control and deleting the Jobs: time to flush counts."""
    drift_after_seconds: float = 120.0
    """A launched or running Job whose stored status is this old gets compared with the cluster by
    the sweep (a Job event the ApiServerSource dropped or never sent is then noticed)."""
    drift_checks_per_sweep: int = 50
    """At most this many queues compared with the cluster per sweep (one Job list call each); 0: none."""
    retention_days: float = 30.0
    """Queues that ended longer ago than this move to the archive (still read by id, and listed with
    `archived=true`), a batch per sweep, so the hot set stays small; 0: never."""


def _tokens(env: Mapping[str, str], name: str) -> tuple[bytes, ...]:
    """A comma-separated token list, kept as SHA-256 digests: compared in constant time, and
    nothing in memory or a repr that logs could show is the token itself."""
    return tuple(hashlib.sha256(t.strip().encode()).digest() for t in env.get(name, "").split(",") if t.strip())


READ, OPERATE = "read", "operate"


@dataclass(frozen=True)
class AuthSettings:
    """Bearer tokens, from a Kubernetes Secret through the environment; none set: no checks."""

    read_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    """QM_READ_TOKENS: may list, get, watch queues and scrape metrics."""
    operate_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    """QM_OPERATE_TOKENS: may also start, plan, stop, retry and repair drift, and post plain
    JSON (not a CloudEvent) to the routes Knative delivers to (`/`, `/telemetry`, `/sweep`)."""

    @property
    def enabled(self) -> bool:
        return bool(self.read_tokens or self.operate_tokens)

    def role(self, token: bytes) -> str | None:
        """The token's role, compared with every configured digest (no early exit)."""
        digest = hashlib.sha256(token).digest()
        operate = read = False
        for known in self.operate_tokens:
            operate |= hmac.compare_digest(known, digest)
        for known in self.read_tokens:
            read |= hmac.compare_digest(known, digest)
        return OPERATE if operate else READ if read else None


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    arango: ArangoSettings = field(default_factory=ArangoSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    local_dir: str = ".local"
    """Home of the embedded default: SQLite state, local events, manifests."""
    max_body_bytes: int = 256 * 1024
    """Larger request bodies get a 413."""
    event_source: str = constants.EVENT_SOURCE
    """`source` attribute of the CloudEvents the functions emit."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        local_dir = env.get("QM_LOCAL_DIR", ".local")
        in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST"))
        return cls(
            kafka=KafkaSettings(
                bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", ""),
                user=env.get("KAFKA_USER", ""),
                password=env.get("KAFKA_PASSWORD", ""),
                ca_path=env.get("CA_PATH", ""),
                sasl_mechanism=env.get("KAFKA_SASL_MECHANISM", "PLAIN"),
                control_topic=env.get("QUEUE_CONTROL_TOPIC", "queue-control"),
                events_topic=env.get("QUEUE_EVENTS_TOPIC", "queue-events"),
                timeout_ms=_int(env, "KAFKA_TIMEOUT_MS", 5000),
            ),
            arango=ArangoSettings(
                url=env.get("ARANGO_URL", ""),
                db=env.get("ARANGO_DB", "streamforge"),
                user=env.get("ARANGO_USER", "root"),
                password=env.get("ARANGO_PASSWORD", ""),
            ),
            jobs=JobSettings(
                launcher=env.get("JOB_LAUNCHER", "kubernetes" if in_cluster else "local"),
                namespace=env.get("JOB_NAMESPACE", "streamforge"),
                kubeconfig=env.get("KUBECONFIG", ""),
                images=_images(env),
                image_pull_policy=env.get("JOB_IMAGE_PULL_POLICY", "IfNotPresent"),
                service_account=env.get("JOB_SERVICE_ACCOUNT", ""),
                backoff_limit=_int(env, "JOB_BACKOFF_LIMIT", 2),
                active_deadline_seconds=_int(env, "JOB_ACTIVE_DEADLINE_SECONDS", 0),
                ttl_seconds_after_finished=_int(env, "JOB_TTL_SECONDS_AFTER_FINISHED", 3600),
                cpu_request=env.get("JOB_CPU_REQUEST", "100m"),
                memory_request=env.get("JOB_MEMORY_REQUEST", "256Mi"),
                memory_limit=env.get("JOB_MEMORY_LIMIT", "1Gi"),
                kafka_secret=env.get("JOB_KAFKA_SECRET", "streamforge-kafka"),
                arango_secret=env.get("JOB_ARANGO_SECRET", "streamforge-arango"),
                manifests_dir=env.get("JOB_MANIFESTS_DIR", os.path.join(local_dir, "jobs")),
                limits=_limits(env),
                pod_annotations={str(k): str(v) for k, v in _json_object(env, "JOB_POD_ANNOTATIONS").items()},
                node_selector={str(k): str(v) for k, v in _json_object(env, "JOB_NODE_SELECTOR").items()},
                priority_classes=_priority_classes(env),
                lease_ttl_seconds=_int(env, "LEASE_TTL_SECONDS", 300),
                stop_grace_seconds=_seconds(env, "STOP_GRACE_SECONDS", 5.0),
                drift_after_seconds=_seconds(env, "DRIFT_AFTER_SECONDS", 120.0),
                drift_checks_per_sweep=_count(env, "DRIFT_CHECKS_PER_SWEEP", 50),
                retention_days=_retention(env),
            ),
            auth=AuthSettings(read_tokens=_tokens(env, "QM_READ_TOKENS"),
                              operate_tokens=_tokens(env, "QM_OPERATE_TOKENS")),
            local_dir=local_dir,
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 256 * 1024),
        )
