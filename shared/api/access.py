"""Who may call a route: bearer tokens by role (README, "Access")."""

from __future__ import annotations

from starlette.requests import Request

from shared.adapters import events
from shared.api import body
from shared.core.config import OPERATE, AuthSettings
from shared.core.errors import Forbidden, Unauthorized

OPEN, DELIVERY = None, "delivery"
"""Roles a route may need besides READ and OPERATE: none (probes, pages, the document), or none
because Knative delivers it (CloudEvents at `/`, telemetry, the sweep): sources and Triggers
send no bearer token, so those routes are kept inside the cluster instead (README, "Access")."""


def check(request: Request, auth: AuthSettings, role: str) -> None:
    """:raises Unauthorized: no token, or an unknown one. :raises Forbidden: a read token where
    operate is needed. A CloudEvent at a delivery route passes; plain JSON there needs operate."""
    if not auth.enabled:
        return
    if role == DELIVERY:
        if _is_cloudevent(request):
            return
        role = OPERATE
    _token_role(request, auth, role)


def _is_cloudevent(request: Request) -> bool:
    """What Knative delivers, decided as the decoder decides it (`events.is_cloudevent`, the
    headers as it reads them: the last of a repeated one), so nothing read as plain JSON passes."""
    return events.is_cloudevent(body.headers(request))


def _token_role(request: Request, auth: AuthSettings, role: str) -> None:
    header = next((v for k, v in request.scope["headers"] if k == b"authorization"), b"")
    scheme, _, token = header.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise Unauthorized("a bearer token is required: Authorization: Bearer <token>")
    granted = auth.role(token.strip())  # the bytes as sent: a UTF-8 token matches its env value
    if granted is None:
        raise Unauthorized("the bearer token is not valid here")
    if role == OPERATE and granted != OPERATE:
        raise Forbidden("this token may read; starting, stopping and retrying need an operate token")
