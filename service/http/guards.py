"""Route guards: bearer API keys for ``/v1``, admin keys (and writes switched on) for writes."""

from __future__ import annotations

import secrets
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from service.errors import ForbiddenError
from service.settings import Settings

__all__ = ["require_admin_key", "require_api_key"]

# What a 401 asks for (RFC 6750): a bearer token.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="citeqa"'}


def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for ``/v1``: when API keys are configured, a bearer token must match one."""
    settings: Settings = connection.app.state.settings
    if not settings.api_key_list:
        return
    # An admin key also reads, so a writer needs only one Authorization header.
    if not _bearer_matches(connection, settings.api_key_list + settings.admin_key_list):
        raise NotAuthorizedException("missing or invalid API key", headers=_CHALLENGE)


def _bearer_matches(connection: ASGIConnection[Any, Any, Any, Any], keys: tuple[str, ...]) -> bool:
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    matched = False
    for key in keys:  # every key is compared, so timing does not reveal which matched
        matched |= secrets.compare_digest(token.strip().encode(), key.encode())
    return scheme.lower() == "bearer" and matched


def require_admin_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for document writes: an admin bearer key, and writes switched on at all."""
    settings: Settings = connection.app.state.settings
    if settings.read_only:
        raise ForbiddenError("this replica is read-only; send writes to the instance that writes")
    keys = settings.admin_key_list
    if not keys:
        raise ForbiddenError("document ingestion is disabled; set CITEQA_ADMIN_KEYS to enable it")
    if not _bearer_matches(connection, keys):
        if _bearer_matches(connection, settings.api_key_list):  # known, but may only read
            raise ForbiddenError("this key may read but not write; writes need an admin key")
        raise NotAuthorizedException("missing or invalid admin key", headers=_CHALLENGE)
