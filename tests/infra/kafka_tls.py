"""Certificates for a Kafka listener over TLS (SASL_SSL), made with the openssl CLI.

A throwaway CA and a server certificate for 127.0.0.1/localhost, valid for two days. The
broker reads the key and chain as a PEM keystore (``ssl.keystore.type=PEM``); clients trust
``ca.crt``, which is what the seed's CA_PATH and the ``ca.crt`` key of the streamforge-kafka
Secret carry.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_certificates(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """(ca.crt, server.pem with key and chain) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.cnf"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
            "-days", "2", "-subj", "/CN=streamforge-test-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", "2", "-extfile", str(ext))
    pem = directory / "server.pem"
    pem.write_text(key.read_text() + crt.read_text() + ca_crt.read_text())
    return ca_crt, pem
