"""Signed checkpoints of the audit chain: evidence that survives a rewrite of the whole database.

The hash chain (audit/chain.py) shows an edited row or a cut tail, but whoever can write the whole
database can recompute every hash from the first changed event on. A checkpoint is the chain's head
(`seq`, `hash`) at a moment, signed with an Ed25519 key that is *not* in the database (keep it on
another machine, or at least readable only by the operator). Later, `authgate audit verify
--checkpoint FILE --key KEY` checks the signature and that the chain still holds that hash at that
seq: a rewritten history no longer matches, a rolled-back one no longer reaches it.

Take checkpoints regularly (cron: `authgate audit checkpoint --key K -o checkpoint-$(date +%F).json`)
and keep them where the database's writers cannot change them.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from authgate.audit.chain import HEAD_ID, ensure_head
from authgate.db.base import utcnow
from authgate.db.models import AuditChainHead
from authgate.db.models import AuditEvent as AuditRow
from authgate.db.session import Database

FORMAT = "authgate-audit-checkpoint/1"


class CheckpointError(Exception):
    """A key or checkpoint file that cannot be used; the message says what to do."""


def _payload(checkpoint: dict[str, Any]) -> bytes:
    signed = {k: checkpoint[k] for k in ("format", "seq", "hash", "time")}
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def load_or_create_key(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The private key at `path`, created (0600, and its public half at `path.pub`) if missing."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        path.with_name(path.name + ".pub").write_bytes(public)
        return key, True
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise CheckpointError(f"{path} is readable by other users: anyone who can read it can forge checkpoints; "
                              f"run `chmod 600 {path}`")
    existing = _read_key(path)
    if not isinstance(existing, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 private key (let `authgate audit checkpoint --key NEW` make one)")
    return existing, False


def _read_key(path: Path) -> object:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError):
        pass
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise CheckpointError(f"{path} is not a PEM key") from None


def public_key(path: Path) -> Ed25519PublicKey:
    """The verifying key from a private key file or its `.pub`."""
    key = _read_key(path)
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, Ed25519PublicKey):
        return key
    raise CheckpointError(f"{path} is not an Ed25519 key")


async def make_checkpoint(db: Database, key: Ed25519PrivateKey) -> dict[str, Any]:
    await ensure_head(db)
    async with db.session() as session:
        head = await session.get(AuditChainHead, HEAD_ID)
        assert head is not None
        seq, hash_ = head.seq, head.hash
    checkpoint: dict[str, Any] = {"format": FORMAT, "seq": seq, "hash": hash_,
                                  "time": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    checkpoint["key"] = _b64(raw)
    checkpoint["signature"] = _b64(key.sign(_payload(checkpoint)))
    return checkpoint


@dataclass(frozen=True)
class CheckpointResult:
    seq: int
    time: str
    problem: str | None = None


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        checkpoint = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an authgate audit checkpoint ({FORMAT})")
    if not isinstance(checkpoint.get("seq"), int) or not all(
            isinstance(checkpoint.get(k), str) for k in ("hash", "time", "signature")):
        raise CheckpointError(f"{path} lacks seq, hash, time or signature")
    return checkpoint


async def check_checkpoint(db: Database, checkpoint: dict[str, Any], key: Ed25519PublicKey) -> CheckpointResult:
    """Whether the signature holds and the chain still has the checkpoint's hash at its seq."""
    seq, expected, when = checkpoint["seq"], checkpoint["hash"], checkpoint["time"]
    try:
        key.verify(base64.b64decode(checkpoint["signature"]), _payload(checkpoint))
    except (InvalidSignature, ValueError):
        return CheckpointResult(seq, when, "the checkpoint's signature does not verify with this key "
                                           "(the checkpoint was altered, or signed with another key)")
    await ensure_head(db)
    async with db.session() as session:
        head = await session.get(AuditChainHead, HEAD_ID)
        assert head is not None
        found = (await session.execute(select(AuditRow.hash).where(AuditRow.seq == seq))).scalar_one_or_none()
        anchor_seq, anchor_hash, head_seq = head.anchor_seq, head.anchor_hash, head.seq
    if seq > head_seq:
        return CheckpointResult(seq, when, f"the log ends at event {head_seq}, but event {seq} was recorded "
                                           f"by {when} (events removed: the log was rolled back)")
    if seq == 0:
        return CheckpointResult(seq, when)
    if found is None and seq == anchor_seq:
        found = anchor_hash
    if found is None:
        if seq < anchor_seq:
            return CheckpointResult(seq, when, f"event {seq} was pruned (the log starts after {anchor_seq}): "
                                               "check a newer checkpoint")
        return CheckpointResult(seq, when, f"event {seq} is missing from the log (removed events)")
    if found != expected:
        return CheckpointResult(seq, when, f"event {seq} no longer has the hash signed on {when}: "
                                           "the log was rewritten up to or before that event")
    return CheckpointResult(seq, when)
