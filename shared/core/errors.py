"""Errors that say what the caller should do.

`ClientError`s are permanent (bad input: a 4xx, never retried);
`BackendUnavailable` is temporary (a 503, so Knative retries the delivery).
"""

from typing import Any


class QueueManagerError(Exception):
    """Root of every error the library raises on purpose."""

    status_code = 500

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ClientError(QueueManagerError):
    """The request is wrong; retrying it unchanged will fail again."""

    status_code = 400


class InvalidInput(ClientError):
    status_code = 422


class PayloadTooLarge(ClientError):
    status_code = 413


class UnsupportedMediaType(ClientError):
    status_code = 415


class MethodNotAllowed(ClientError):
    status_code = 405

    def __init__(self, message: str, *, allow: list[str]) -> None:
        super().__init__(message)
        self.allow = allow
        """The methods the path answers: the response's ``Allow`` header."""


class Unauthorized(ClientError):
    """No bearer token, or one this server does not know (answered with `WWW-Authenticate`)."""

    status_code = 401


class Forbidden(ClientError):
    """A known token whose role does not cover the request."""

    status_code = 403


class NotFound(ClientError):
    status_code = 404


class Conflict(ClientError):
    status_code = 409


class LaunchRefused(Conflict):
    """The cluster refused a queue's Jobs for good (a name taken, a Job the API server rejects):
    the queue is recorded and failed. `refused`: job name -> why."""

    def __init__(self, queue_id: str, refused: dict[str, str]) -> None:
        super().__init__(f"queue {queue_id} failed to launch: "
                         + "; ".join(f"{name}: launch refused: {why}" for name, why in refused.items()),
                         details=[{"queue_id": queue_id}])
        self.queue_id, self.refused = queue_id, refused


class BackendUnavailable(QueueManagerError):
    """A backend (state store, Kafka, Kubernetes) cannot be reached: retry later."""

    status_code = 503

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"{backend} unavailable: {message}")
        self.backend = backend
