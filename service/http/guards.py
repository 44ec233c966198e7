"""Route guards: a key for ``/v1`` (when keys are configured), a writing key for writes.

Each guard leaves what the key may do in ``request.state.access`` (``service/http/access.py``),
which handlers take as the ``access`` dependency.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from service.errors import ForbiddenError
from service.http.access import Access, KeyRing
from service.observe import note
from service.settings import Settings

__all__ = ["require_api_key", "require_every_collection", "require_writer"]

# What a 401 asks for (RFC 6750): a bearer token.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="citeqa"'}


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _grant(connection: ASGIConnection[Any, Any, Any, Any], access: Access) -> None:
    connection.state.access = access
    # The log carries what the key reads, never the key.
    note(key_collections="*" if access.collections is None else sorted(access.collections))


def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for ``/v1``: when reading needs a key, a bearer token must be a configured one."""
    keys: KeyRing = connection.app.state.key_ring
    access = keys.access(_bearer(connection))
    if access is None:
        if keys.reads_need_key:
            raise NotAuthorizedException("missing or invalid API key", headers=_CHALLENGE)
        access = Access()  # reading needs no key: every collection, no writes
    _grant(connection, access)


def require_writer(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for document writes: a key that writes, and writes switched on at all."""
    settings: Settings = connection.app.state.settings
    keys: KeyRing = connection.app.state.key_ring
    if settings.read_only:
        raise ForbiddenError("this replica is read-only; send writes to the instance that writes")
    if not keys.any_writer:
        raise ForbiddenError(
            "document ingestion is disabled; set CITEQA_ADMIN_KEYS, or a key with "
            '"write": true in CITEQA_KEYS_FILE, to enable it'
        )
    access = keys.access(_bearer(connection))
    if access is None:
        raise NotAuthorizedException("missing or invalid admin key", headers=_CHALLENGE)
    if not access.write:
        raise ForbiddenError("this key may read but not write; writes need an admin key")
    _grant(connection, access)


def require_every_collection(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Guard for ``/metrics``, whose figures count and name every collection.

    Open while reading needs no key; otherwise a key that reads every collection (an admin
    key, or a plain read key), so that a key of some collections learns nothing of the rest.
    """
    require_api_key(connection, handler)
    if connection.state.access.collections is not None:
        raise ForbiddenError("/metrics counts every collection: it needs a key that reads them all")
