"""`sfq`'s client for the queue manager's HTTP API: JSON envelopes and the SSE stream,
with every failure turned into a `CliError` carrying the exit code `sfq` ends with."""

from __future__ import annotations

import http.client
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

OK, QUEUE_ERROR, QUEUE_STOPPED, UNREACHABLE, REFUSED, USAGE = 0, 1, 2, 3, 4, 64


class CliError(Exception):
    def __init__(self, code: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class Api:
    """The queue manager's HTTP API: JSON envelopes, and the SSE stream."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(USAGE, f"--url must be an http(s) URL, got {url!r}")
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def _request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
                 ) -> urllib.request.Request:
        head = {"Accept": "application/json", "User-Agent": "sfq/0.1", **(headers or {})}
        if self.token:
            head["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data, head["Content-Type"] = json.dumps(body).encode(), "application/json"
        return urllib.request.Request(self.url + path, data=data, method=method, headers=head)

    def _open(self, request: urllib.request.Request, timeout: float) -> Any:
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read() or b"{}")
            except ValueError:
                payload = {}
            message = payload.get("message") if isinstance(payload, dict) else None
            code = UNREACHABLE if e.code in (502, 503, 504) else REFUSED
            raise CliError(code, f"{e.code}: {message or e.reason}",
                           payload.get("errors") if isinstance(payload, dict) else None) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            raise CliError(UNREACHABLE, f"cannot reach the queue manager at {self.url}: {reason} "
                                        "(set --url or SFQ_URL)") from None

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
             ) -> dict[str, Any]:
        with self._open(self._request(method, path, body, headers), self.timeout) as response:
            try:
                return json.loads(response.read())  # type: ignore[no-any-return]
            except ValueError as e:
                raise CliError(REFUSED, f"{self.url}{path} did not answer JSON: {e}") from None

    def events(self, path: str, last_id: str | None) -> Iterator[tuple[str, str | None, str]]:
        """(event, id, data) per Server-Sent Event, until the server ends the stream."""
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        # The server sends a heartbeat every 15 s; a silent minute means the connection is gone.
        with self._open(self._request("GET", path, headers=headers), max(self.timeout, 60.0)) as response:
            yield from self._parse(response)

    def _parse(self, response: Any) -> Iterator[tuple[str, str | None, str]]:
        event: str = "message"
        id_: str | None = None
        data: list[str] = []
        try:
            for raw in response:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:
                    if data:
                        yield event, id_, "\n".join(data)
                    event, data = "message", []
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    elif field == "id":
                        id_ = value
        except (OSError, http.client.HTTPException) as e:  # dropped mid-stream: the caller reconnects
            raise CliError(UNREACHABLE, f"lost the stream from {self.url}: {e}") from None


def read_json(path: str) -> Any:
    """A JSON file's content, or stdin's for `-`."""
    try:
        if path == "-":
            return json.loads(sys.stdin.read())
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise CliError(USAGE, f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise CliError(USAGE, f"{path} is not JSON: {e}") from None
