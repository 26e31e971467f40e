"""Kafka's jars and a JVM to run them, fast: the pinned version, the jars fetched with
Maven (tests/infra/kafka/fetch.sh, cached), `java` found, and an application class-data
archive per command line that takes about a third off every later start."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
KAFKA_DIR = HERE / "kafka"
POM = KAFKA_DIR / "pom.xml"
FETCH_SCRIPT = KAFKA_DIR / "fetch.sh"


class KafkaBrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started or stopped."""


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version pinned in tests/infra/kafka/pom.xml."""
    m = re.search(r"^\s*<kafka\.version>([0-9][^<]*)</kafka\.version>", pom.read_text(), re.M)
    if not m:
        raise KafkaBrokerError(f"no <kafka.version> in {pom}")
    return m.group(1)


KAFKA_VERSION = kafka_version()


def fetch_kafka_libs(timeout: float = 900.0) -> Path:
    """Return the directory of broker jars, downloading them with Maven if needed.

    ``STREAMFORGE_KAFKA_LIBS`` overrides the location (no download then).
    """
    override = os.environ.get("STREAMFORGE_KAFKA_LIBS")
    if override:
        libs = Path(override)
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise KafkaBrokerError(f"STREAMFORGE_KAFKA_LIBS={libs} has no kafka_2.13-*.jar")
        return libs
    try:
        proc = subprocess.run(
            ["bash", str(FETCH_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise KafkaBrokerError(f"{FETCH_SCRIPT} did not finish in {timeout:.0f}s") from e
    if proc.returncode != 0:
        raise KafkaBrokerError(f"{FETCH_SCRIPT} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise KafkaBrokerError(f"{FETCH_SCRIPT} printed no libs directory")
    return Path(lines[-1])


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise KafkaBrokerError("no `java` on PATH (Kafka 4 needs Java 17+; apt-get install openjdk-17-jre-headless)")
    return java


def _cds_enabled() -> bool:
    return os.environ.get("STREAMFORGE_KAFKA_CDS", "1") not in ("0", "false", "no", "off")


class CdsArchive:
    """Application class-data sharing (JDK 13+ dynamic archive) for one JVM command line.

    The first JVM run with a given (java binary, JVM flags, jar set, main class) dumps the
    classes it loaded into ``<libs>/../cds/<main>-<hash>.jsa`` when it exits
    (``-XX:ArchiveClassesAtExit``); later runs map it (``-XX:SharedArchiveFile``), which
    takes roughly a third off the broker's start time. A stale or unusable archive is
    ignored by the JVM (``-Xshare:auto``). Disable with STREAMFORGE_KAFKA_CDS=0.
    """

    def __init__(self, java: str, libs: Path, opts: Iterable[str], main: str) -> None:
        opts = list(opts)
        self.tmp: Path | None = None
        self.path: Path | None = None
        if not _cds_enabled() or any(
            o == "-Xshare:off" or o.startswith(("-XX:SharedArchiveFile", "-XX:ArchiveClassesAtExit")) for o in opts
        ):
            return
        h = hashlib.sha256()
        try:
            st = Path(java).resolve().stat()
            h.update(f"{Path(java).resolve()}|{st.st_size}|{st.st_mtime_ns}|{main}|{' '.join(opts)}".encode())
            for jar in sorted(libs.glob("*.jar")):
                h.update(f"|{jar.name}:{jar.stat().st_size}".encode())
        except OSError:
            return
        self.path = libs.parent / "cds" / f"{main.rsplit('.', 1)[-1]}-{h.hexdigest()[:16]}.jsa"

    def flags(self) -> list[str]:
        if self.path is None:
            return []
        if self.path.is_file() and self.path.stat().st_size > 0:
            return [f"-XX:SharedArchiveFile={self.path}"]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return []
        self.tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        return [f"-XX:ArchiveClassesAtExit={self.tmp}"]

    def collect(self) -> None:
        """After the JVM exited: publish a freshly dumped archive (atomically)."""
        tmp, self.tmp = self.tmp, None
        if tmp is None:
            return
        try:
            if tmp.is_file() and tmp.stat().st_size > 0:
                os.replace(tmp, self.path)  # type: ignore[arg-type]
            else:
                tmp.unlink(missing_ok=True)
        except OSError:
            pass

    def discard(self) -> None:
        """Forget the archive (used when a JVM that mapped it failed to start)."""
        self.collect()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
