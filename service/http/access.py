"""Who a request is: the key it carries, what the key may read, and whether it may write.

Three kinds of key, which may be mixed:

- ``CITEQA_API_KEYS``: read every collection;
- ``CITEQA_ADMIN_KEYS``: read and write every collection;
- ``CITEQA_KEYS_FILE``: a JSON file of keys, each stored only as its SHA-256, each with the
  collections it sees and whether it writes them:
  ``{"keys": [{"key_sha256": "…", "collections": ["hr"], "write": false}]}``. It is read
  again on SIGHUP, and when its modification time or size changes; a file that no longer
  parses leaves the keys as they were, and says why in the log.

A key that is not configured is refused (401); a collection or document outside a key's
collections is, for that key, one that does not exist (404).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from index import DEFAULT_COLLECTION
from service.answering import Scope
from service.errors import InvalidRequestError
from service.schemas import Collection, Filter
from service.settings import Settings

__all__ = ["Access", "KeyRing", "KeysFileError"]

log = logging.getLogger(__name__)


class KeysFileError(ValueError):
    """``CITEQA_KEYS_FILE`` cannot be read, or is not what it should be."""


class _Key(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One key of the keys file: its hash, never the key."""

    key_sha256: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]
    # The collections the key reads (and writes, with ``write``); None: every collection.
    collections: list[Collection] | None = None
    write: bool = False


class _KeysFile(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[_Key]


@dataclass(frozen=True)
class Access:
    """What one request may do: read ``collections`` (None: every one), and write them."""

    collections: frozenset[str] | None = None
    write: bool = False

    def sees(self, collection: str) -> bool:
        """Whether the key reads ``collection``."""
        return self.collections is None or collection in self.collections

    def scope(self, collections: list[str] | None, filter: Filter | None) -> Scope | None:
        """What a question may see: the collections asked for that the key reads.

        None when nothing narrows it (every collection, no filter). A collection the key
        does not read is left out as one that does not exist would be.
        """
        if collections is None:
            wanted = self.collections
        else:
            wanted = frozenset(c for c in collections if self.sees(c))
        if wanted is None and filter is None:
            return None
        return Scope(wanted, filter)

    def only_collection(self) -> str | None:
        """The collection a write means when it names none; None if the key must name one."""
        if self.collections is None or DEFAULT_COLLECTION in self.collections:
            return DEFAULT_COLLECTION
        return next(iter(self.collections)) if len(self.collections) == 1 else None

    def collection(self, given: str | None) -> str:
        """The collection a request about one document or one write means.

        ``given``, else ``default`` when the key reads it, else the key's one collection;
        a key of several must name one (400). Whether the key sees it is the caller's check.
        """
        found = given or self.only_collection()
        if found is None:
            raise InvalidRequestError(
                "this key reads the collections "
                + ", ".join(sorted(self.collections or ()))
                + ": name one with ?collection="
            )
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class KeyRing:
    """The configured keys, and what each presented token may do."""

    def __init__(self, settings: Settings) -> None:
        self._plain = [(_digest(k), Access(None, False)) for k in settings.api_key_list]
        self._plain += [(_digest(k), Access(None, True)) for k in settings.admin_key_list]
        self._path = settings.keys_file
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._file: list[tuple[bytes, Access]] = []
        if self._path is not None:
            self._load(strict=True)

    @property
    def reads_need_key(self) -> bool:
        """Whether reading needs a key: read keys, or a keys file, are configured."""
        return self._path is not None or any(not a.write for _, a in self._plain)

    @property
    def any_writer(self) -> bool:
        """Whether any configured key may write."""
        return any(a.write for _, a in self._keys())

    def access(self, token: str | None) -> Access | None:
        """What ``token`` may do; None for no token or one that is not configured.

        Every configured key is compared, in constant time, so that the time taken does
        not say which key, or how much of one, matched.
        """
        presented = _digest(token or "")
        found: Access | None = None
        for digest, access in self._keys():
            if secrets.compare_digest(presented, digest) and found is None:
                found = access
        return found if token else None

    def reload(self) -> None:
        """Read the keys file again now (SIGHUP)."""
        self._stamp = None
        self._keys()

    def _keys(self) -> list[tuple[bytes, Access]]:
        if self._path is not None and _stamp_of(self._path) != self._stamp:
            self._load(strict=False)
        return self._plain + self._file

    def _load(self, *, strict: bool) -> None:
        with self._lock:
            assert self._path is not None
            stamp = _stamp_of(self._path)
            try:
                parsed = msgspec.json.decode(self._path.read_bytes(), type=_KeysFile)
            except (OSError, msgspec.DecodeError) as exc:
                message = f"CITEQA_KEYS_FILE {self._path}: {exc}"
                if strict:
                    raise KeysFileError(message) from exc
                log.error("%s; the keys stay as they were", message)
                self._stamp = stamp  # not read again until it changes again
                return
            self._file = [
                (bytes.fromhex(k.key_sha256),
                 Access(None if k.collections is None else frozenset(k.collections), k.write))
                for k in parsed.keys
            ]  # fmt: skip
            self._stamp = stamp
            log.info("keys file read: %d keys", len(self._file))


def _stamp_of(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)
