"""API keys: made by ``deepfakescan keys create``, checked by the web layer on every request.

A key is 256 random bits, shown once when it is made; the store keeps only its SHA-256, so a
copy of the database (a backup, a leaked dump) opens nothing. A plain digest suffices: the key
is random, not a password, so there is nothing to guess from the digest. ``id`` is the key's
public handle (listed, revoked, recorded as the owner of its scans).

Keys live in the job store (``api_keys``), so every web node sees a new or revoked key at its
next request. Rows are never deleted: once a store has had a key, the server it backs asks
for one, even after the last key is revoked (revoking cannot open it by accident).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from .schema import api_keys
from .store import JobStore

KEY_PREFIX = "dfs_"
"""Makes a key recognisable in a config file or a secret scanner's findings."""
KEY_BYTES = 32
ID_BYTES = 6
MAX_LABEL = 100


@dataclass(frozen=True)
class ApiKey:
    """One key as listed: never the key itself."""

    id: str
    label: str
    admin: bool
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def key_digest(key: str) -> str:
    """What the store keeps of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The API keys of one job store.

    Parameters
    ----------
    store
        The job store whose database holds the keys (its connections and error handling are
        shared: a database that is down raises ``StoreUnavailable``).
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._had_keys = False

    def create(self, label: str, *, admin: bool = False) -> tuple[ApiKey, str]:
        """A new key: its listing and the key itself, which is not stored and not shown again."""
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        row = {
            "id": secrets.token_hex(ID_BYTES),
            "key_hash": key_digest(key),
            "label": " ".join(label.split())[:MAX_LABEL],
            "admin": bool(admin),
            "created_at": time.time(),
            "revoked_at": None,
        }
        with self.store._write() as conn:
            conn.execute(api_keys.insert().values(**row))
        row.pop("key_hash")
        return ApiKey(**row), key

    def list(self) -> list[ApiKey]:
        """Every key ever made, oldest first, revoked ones included."""
        query = sa.select(*_LISTED).order_by(api_keys.c.created_at, api_keys.c.id)
        with self.store._read() as conn:
            return [ApiKey(**r._mapping) for r in conn.execute(query)]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key: its Bearer requests and its page sessions stop at once. False when
        there is no active key with that id."""
        query = api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        with self.store._write() as conn:
            return conn.execute(query.values(revoked_at=time.time())).rowcount == 1

    def verify(self, key: str) -> ApiKey | None:
        """The active key whose digest this is, or None."""
        return self._active(api_keys.c.key_hash == key_digest(key))

    def get(self, key_id: str) -> ApiKey | None:
        """The active key with this id (a page session names its key by id), or None."""
        return self._active(api_keys.c.id == key_id)

    def enabled(self) -> bool:
        """True once the store has had a key. Cached when true: keys are never deleted."""
        if not self._had_keys:
            with self.store._read() as conn:
                found = conn.execute(sa.select(api_keys.c.id).limit(1)).first()
            self._had_keys = found is not None
        return self._had_keys

    def _active(self, where: sa.ColumnElement[bool]) -> ApiKey | None:
        query = sa.select(*_LISTED).where(where, api_keys.c.revoked_at.is_(None))
        with self.store._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else ApiKey(**row._mapping)


_LISTED = [
    api_keys.c.id,
    api_keys.c.label,
    api_keys.c.admin,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
]
