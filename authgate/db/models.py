"""The schema: identities, refresh tokens and the audit log. Secrets are stored only as hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authgate.db.base import Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Bumped on every password change; refresh tokens and cached credentials of older
    #: generations stop working.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="team", cascade="all, delete-orphan")


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "team_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))

    user: Mapped[User] = relationship(back_populates="memberships")
    team: Mapped[Team] = relationship(back_populates="memberships")


class Robot(Base):
    __tablename__ = "robots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: SHA-256 of the high-entropy secret: no bcrypt cost needed for 256 random bits.
    secret_hash: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Bumped when the robot is disabled (or brought back after it expired): part of its tokens'
    #: epoch, so tokens issued before stay dead when it is enabled again (migration 0005).
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The user's `generation` when issued: a password change kills older tokens.
    generation: Mapped[int] = mapped_column(Integer)
    service: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship()


class AuditEvent(Base):
    """One row per event; `hash` chains over `prev_hash` and the row's content (tamper evidence)."""

    __tablename__ = "audit_events"
    # Listing pages by seq, newest first, so the filters' indexes end in seq (migration 0002).
    __table_args__ = (
        Index("ix_audit_events_repository_seq", "repository", "seq"),
        Index("ix_audit_events_actor_seq", "actor_name", "seq"),
        Index("ix_audit_events_action_seq", "action", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    #: Position in the chain: unique, gap-free until pruned.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_type: Mapped[str] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    repository: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(255), nullable=True)
    digest: Mapped[str | None] = mapped_column(String(160), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The id the source gave the event (a registry notification's id), so a resent one is recorded once.
    source_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row that serialises appends to the chain (row lock on PostgreSQL) and survives pruning."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    #: Hash and seq of the last pruned event, so a pruned log still verifies from there.
    anchor_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    anchor_hash: Mapped[str] = mapped_column(String(64))


class ConsoleSession(Base):
    """A signed-in web console session. Held here rather than in a signed cookie so that signing
    out (or disabling the user) ends it at once, in every process that shares the database."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 of the cookie value: a copy of the table does not sign anyone in.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: Sent back in every state-changing form; compared in constant time.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class LoginUnlock(Base):
    """An administrator's `authgate user unlock`: the login limiter forgets the target's failures and
    locks when it next meets them with an older unlock applied (authgate.auth.unlocks)."""

    __tablename__ = "login_unlocks"

    #: `user:NAME` or `address:ADDR`.
    target: Mapped[str] = mapped_column(String(320), primary_key=True)
    unlocked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdentityLink(Base):
    """A user that an OpenID provider vouches for (`authgate login --oidc`, authgate.identity.people).

    The provider's refresh token is kept sealed (encrypted with a key in the data dir, never in
    the database): it is what lets authgate ask the provider again, so a person removed there
    loses registry access. `teams` are the memberships this link gave, so the next sync can take
    back exactly those.
    """

    __tablename__ = "identity_links"
    __table_args__ = (UniqueConstraint("source", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    source: Mapped[str] = mapped_column(String(64))
    #: The provider's `sub` for this person.
    subject: Mapped[str] = mapped_column(String(255))
    sealed_refresh_token: Mapped[str] = mapped_column(Text)
    teams: Mapped[list[str]] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GatewayReferrer(Base):
    """A manifest with a `subject`, pushed through the gateway: what the referrers API lists for an
    upstream that has none (authgate.gateway.referrer_index). One row per repository and manifest."""

    __tablename__ = "gateway_referrers"
    __table_args__ = (
        UniqueConstraint("repository", "digest"),
        Index("ix_gateway_referrers_subject", "repository", "subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    #: `algorithm:hex` of the manifest, and of the manifest it refers to.
    digest: Mapped[str] = mapped_column(String(160))
    subject: Mapped[str] = mapped_column(String(160))
    media_type: Mapped[str] = mapped_column(String(255))
    #: Text: a client may name any artifact type, and a long one must not drop the row.
    artifact_type: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    annotations: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GatewayUpload(Base):
    """An upload session through the gateway, so any replica or worker can continue it
    (authgate.gateway.upload_records). The running hash cannot be stored (hashlib cannot export
    one); `digest` is the digest of the first `size` bytes when one process hashed them all."""

    __tablename__ = "gateway_uploads"

    #: The upstream's upload id (distribution's UUID), which is also the id clients see.
    upload_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    #: The subject that opened it (`user:alice`): only it may continue the session.
    owner: Mapped[str] = mapped_column(String(320), index=True)
    #: The upstream's latest URL for the session, with its signed `_state`.
    location: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    algorithm: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str | None] = mapped_column(String(160), nullable=True)
    #: Bumped by every accepted chunk; a write names the generation it continues (compare and swap).
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class LimiterEvent(Base):
    """A failed or in-progress login counted by the login limiter (authgate.auth.limiter_db), shared
    by every process and replica. Rows older than the limiter's window are deleted in the background."""

    __tablename__ = "limiter_events"
    __table_args__ = (Index("ix_limiter_events_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: `pair\0NAME\0ADDR\0`, `user\0NAME\0`, `addr\0ADDR\0` (authgate.auth.limiter).
    key: Mapped[str] = mapped_column(Text)
    #: Unix time (seconds): the limiter's clock, compared with its window.
    at: Mapped[float] = mapped_column(Float)


class LimiterMark(Base):
    """One timestamp per key for the login limiter: a lockout's end, a trusted pair's expiry."""

    __tablename__ = "limiter_marks"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class SharedVersion(Base):
    """The change counters of shared state (`accounts`, `limiter_locks`, `signing_keys`, `policy`): each bumped in
    the transaction that changes what it counts, all read in one query by every process's poller
    (authgate.db.versions)."""

    __tablename__ = "shared_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class SigningKeyRow(Base):
    """A token signing key, so every replica signs and verifies with the same keys and sees a rotation
    without a restart. The private key is sealed (Fernet, key in the data dir's `keys/`, never in the
    database): a database dump alone cannot mint tokens."""

    __tablename__ = "signing_keys"

    #: The ring's index: the newest active key of the configured algorithm signs.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(8))
    sealed_private_key: Mapped[str] = mapped_column(Text)
    certificate_pem: Mapped[str] = mapped_column(Text)
    #: False while staged: verifying only, until the registries that check tokens trust it.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicySet(Base):
    """One `authgate policy push`: the policy files' names and text, checked before they were stored.
    The newest row is the live policy of every server with `policy_source: database`; older rows are
    the history (`authgate policy pushed`)."""

    __tablename__ = "policy_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: `sha256:` of the files (names and text), so pushing the same files again changes nothing.
    digest: Mapped[str] = mapped_column(String(71))
    #: `[[name, text], ...]` in load order.
    files: Mapped[list[list[str]]] = mapped_column(JSON)
    rules: Mapped[int] = mapped_column(Integer)
    pushed_by: Mapped[str] = mapped_column(String(255))
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
