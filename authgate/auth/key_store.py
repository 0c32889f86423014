"""Signing keys in the database, so every process and replica signs and verifies with the same keys
and a rotation reaches all of them without a restart.

Why the database: a replica's data dir is otherwise empty (PostgreSQL holds the accounts, S3 the
blobs), and copying `keys/` to every replica at each rotation, then restarting each, was the step
operators got wrong. Each key is a row; its private half is sealed with Fernet under `keys/seal.key`,
a file in the data dir (0600) that never enters the database, so a dump or backup alone cannot mint
tokens. That one file is copied to every replica once; it does not change when keys rotate.

Every change bumps the `signing_keys` counter (authgate.db.versions) in its transaction; running
processes poll it and reload their ring within a second (`TRUST_WINDOW`). A key may be *staged*:
it verifies but does not sign, until `authgate keys activate`, for registries that check tokens
against a certificate bundle and must trust the new key before it signs (token-server and gateway modes).

Keys that lived as `keys/signing-N.key` files before are imported once, when the database has none.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, select, update

from authgate.auth.keys import (
    Algorithm, KeyRing, SigningKey, SigningKeyError, check_private, file_key_indexes, generate_key, key_from_pem,
    load_file_key, private_pem, write_private,
)
from authgate.db import versions
from authgate.db.models import SigningKeyRow
from authgate.db.session import Database

log = logging.getLogger(__name__)

SEAL_FILE = "seal.key"


class KeyStore:
    def __init__(self, db: Database, directory: Path) -> None:
        self.db = db
        self.directory = directory
        self.seal_path = directory / SEAL_FILE
        self._fernet: Fernet | None = None

    def _seal(self, create: bool) -> Fernet:
        if self._fernet is None:
            if not self.seal_path.exists():
                if not create:
                    raise SigningKeyError(
                        f"the signing keys in the database are sealed with {self.seal_path}, which this host does not "
                        "have: copy that file (mode 0600) from the host that created the keys, then start again")
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    write_private(self.seal_path, Fernet.generate_key())
                except FileExistsError:
                    pass  # another process made it first: use theirs
            check_private(self.seal_path)
            try:
                self._fernet = Fernet(self.seal_path.read_bytes().strip())
            except ValueError:
                raise SigningKeyError(f"{self.seal_path} is not a seal key (authgate writes 32 url-safe base64 "
                                      "bytes): copy the one from the host that created the keys") from None
        return self._fernet

    def _unseal(self, row: SigningKeyRow) -> SigningKey:
        try:
            pem = self._seal(create=False).decrypt(row.sealed_private_key.encode())
        except InvalidToken:
            raise SigningKeyError(
                f"signing key {row.kid} cannot be unsealed with {self.seal_path}: it is not the seal key the keys "
                "were sealed with; copy the right one from another replica") from None
        return key_from_pem(row.id, pem, row.certificate_pem.encode(), f"signing key {row.kid}")

    def _row(self, key: SigningKey, active: bool, first: bool = False) -> SigningKeyRow:
        return SigningKeyRow(id=key.index, kid=key.kid, algorithm=key.algorithm, active=active,
                             sealed_private_key=self._seal(create=first).encrypt(private_pem(key)).decode(),
                             certificate_pem=key.certificate.public_bytes(serialization.Encoding.PEM).decode())

    async def ring(self, algorithm: Algorithm, create: bool = True) -> KeyRing:
        """Every key; with `create`, the first one (or the files of an earlier version) when there is
        none of `algorithm`. Concurrent first starts create one key: the counter's row lock orders them."""
        rows = await self._rows()
        if create and not any(r.algorithm == algorithm and r.active for r in rows):
            async with self.db.session() as session:
                await versions.bump(session, versions.SIGNING_KEYS)  # taken first: the writers queue here
                existing = list((await session.scalars(select(SigningKeyRow))).all())
                if not existing:
                    existing = self._import_files()
                    session.add_all(existing)
                if not any(r.algorithm == algorithm and r.active for r in existing):
                    index = max((r.id for r in existing), default=0) + 1
                    session.add(self._row(generate_key(algorithm, index), active=True, first=not existing))
            rows = await self._rows()
        return KeyRing([self._unseal(r) for r in rows], algorithm, frozenset(r.kid for r in rows if not r.active))

    def _import_files(self) -> list[SigningKeyRow]:
        indexes = file_key_indexes(self.directory)
        rows = [self._row(load_file_key(self.directory, i), active=True, first=True) for i in indexes]
        if rows:
            log.info("moved %d signing keys from %s into the database (sealed with %s); the signing-*.key files "
                     "are no longer read and may be deleted", len(rows), self.directory, self.seal_path)
        return rows

    async def _rows(self) -> list[SigningKeyRow]:
        async with self.db.session() as session:
            return list((await session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.id))).all())

    async def add(self, algorithm: Algorithm, active: bool) -> SigningKey:
        """A new key with the next index; active, it signs everywhere within a second."""
        await self.ring(algorithm)  # the seal key and any earlier keys first
        async with self.db.session() as session:
            await versions.bump(session, versions.SIGNING_KEYS)
            index = max((await session.scalars(select(SigningKeyRow.id))).all(), default=0) + 1
            key = generate_key(algorithm, index)
            session.add(self._row(key, active))
        return key

    async def activate(self, kid: str) -> SigningKey:
        row = await self._find(kid)
        async with self.db.session() as session:
            await session.execute(update(SigningKeyRow).where(SigningKeyRow.kid == kid).values(active=True))
            await versions.bump(session, versions.SIGNING_KEYS)
        return self._unseal(row)

    async def remove(self, kid: str) -> SigningKey:
        """Delete a key by `kid`; refuses the last active key of its algorithm."""
        row = await self._find(kid)
        rows = await self._rows()
        if row.active and not any(r.active and r.algorithm == row.algorithm and r.kid != kid for r in rows):
            raise SigningKeyError(f"refusing to remove the only active {row.algorithm} signing key; "
                                  "`authgate keys rotate` first")
        async with self.db.session() as session:
            await session.execute(delete(SigningKeyRow).where(SigningKeyRow.kid == kid))
            await versions.bump(session, versions.SIGNING_KEYS)
        return self._unseal(row)

    async def _find(self, kid: str) -> SigningKeyRow:
        for row in await self._rows():
            if row.kid == kid:
                return row
        raise SigningKeyError(f"no signing key with kid {kid!r} (see `authgate keys list`)")
