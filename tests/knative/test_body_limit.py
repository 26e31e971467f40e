"""An oversized body is a 413 the client gets to read, through the real server (gunicorn and
uvicorn, as the image runs it), whether or not the client waits for `100 Continue`."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.servers import FunctionServer, base_env

BIG = 10_000_000  # 40 times MAX_BODY_BYTES' default


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionServer]:
    tmp = tmp_path_factory.mktemp("body-limit")
    with FunctionServer("all", base_env(tmp / "state"), tmp) as srv:
        yield srv


def test_a_client_that_sends_at_once_reads_the_413(server: FunctionServer) -> None:
    """Python's urllib sends the whole body without waiting: it used to get a connection reset."""
    req = urllib.request.Request(server.url + "/queues/start", data=b"x" * BIG, method="POST",
                                 headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=60)
    assert caught.value.code == 413
    assert json.loads(caught.value.read())["message"] == f"body of {BIG} bytes exceeds the 262144-byte limit"


def test_a_client_that_waits_for_100_continue_is_told_413_before_sending(server: FunctionServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall((f"POST /queues/start HTTP/1.1\r\nHost: qm\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {BIG}\r\nExpect: 100-continue\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
    assert head.startswith(b"HTTP/1.1 413 "), head  # no "100 Continue": the body is never asked for


def test_a_chunked_body_over_the_limit_is_413(server: FunctionServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(BIG // 65536):
            yield b"x" * 65536

    req = urllib.request.Request(server.url + "/queues/start", data=chunks(), method="POST",
                                 headers={"content-type": "application/json", "transfer-encoding": "chunked"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=60)
    assert caught.value.code == 413
    assert "exceeds the 262144-byte limit" in json.loads(caught.value.read())["message"]


def test_a_body_within_the_limit_still_starts(server: FunctionServer) -> None:
    code, body = server.call("POST", "/queues/start", {"symbol": "BTCUSDT", "type": "api",
                                                        "time_range": "2024-01-01:2024-01-02"})
    assert code == 200, body


def test_a_client_that_hangs_up_while_sending_is_no_internal_error(server: FunctionServer) -> None:
    """It sends part of an oversized body and closes: the drain stops, nothing is a 500."""
    def internal_errors() -> float:
        code, text = server.call("GET", "/metrics")
        assert code == 200
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("queue_manager_errors_total{") and 'kind="internal"' in line)

    before = internal_errors()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall((f"POST /queues/start HTTP/1.1\r\nHost: qm\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {BIG}\r\n\r\n").encode() + b"x" * 300_000)
    code, body = server.call("POST", "/queues/start", {"symbol": "ETHUSDT", "type": "api",
                                                        "time_range": "2024-01-02:2024-01-03"})
    assert code == 200, body  # still serving
    assert internal_errors() == before


@pytest.mark.parametrize("size", [300_000, BIG])
def test_a_client_without_a_token_that_sends_at_once_reads_the_401(tmp_path, size: int) -> None:
    """Tokens on: refused before its body is read, a client that sends at once still reads the
    401 (the body is read and dropped, as for the 413), not a reset."""
    env = base_env(tmp_path / "state", QM_OPERATE_TOKENS="body-operate")
    with FunctionServer("all", env, tmp_path) as srv:
        req = urllib.request.Request(srv.url + "/queues/start", data=b"x" * size, method="POST",
                                     headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(req, timeout=60)
        assert caught.value.code == 401
        assert "bearer token" in json.loads(caught.value.read())["message"]


def test_a_refused_request_declaring_a_body_it_never_sends_is_answered_at_once(tmp_path) -> None:
    """A length past the drain's budget, or a GET that declares a body and sends none: the 401
    comes without waiting for bytes that never come (the socket's 5 s would run out first)."""
    env = base_env(tmp_path / "state", QM_READ_TOKENS="body-read")
    with FunctionServer("all", env, tmp_path) as srv:
        for length in (10**12, 10**6):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
                sock.sendall(f"GET /queues HTTP/1.1\r\nHost: qm\r\nContent-Length: {length}\r\n\r\n".encode()
                             + (b"x" * 1000 if length == 10**6 else b""))
                head = sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 401 "), (length, head)
