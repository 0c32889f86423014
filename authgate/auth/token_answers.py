"""`/token` answers kept whole, so a request the server has just answered is answered again from memory.

Why: a CI fleet or a `docker pull` of many images asks the same token many times a second. Even
with the account, the password check and the token itself in memory, each answer cost ~340 us of
CPU, half of it the framework around the endpoint (middleware, router, request object). Here the
answer to a request is stored by a keyed hash of everything that decides it, and
`authgate.auth.token_fast` answers a request with the same hash from the stored parts, before the
framework sees it.

What is stored: only what the endpoint marks cacheable (`TokenAnswers.store`): a Basic login of a
local user or a robot, and the refresh grant of a user no identity source re-checks; never an
error, an anonymous answer, nor an answer that issued a refresh token. The key is an HMAC (keyed
BLAKE2b, the key random per process) of the method, the query string, the `Authorization` header
or the form body, and the client address as authgate works it out (trusted proxies included): a
different password, scope, client or address is a different key, so a wrong password never meets a
right one's answer; the secret itself is never kept as a key.

How long an answer is used, at most:
- while `TokenService.issue_recent` would hand out the same token (its reuse window), and never past
  the remembered password's expiry, the robot's or the refresh token's;
- until ANY shared change counter moves (`authgate.db.versions`: accounts, limiter locks, signing
  keys), an account changes through this process, the signing key changes, or the policy reloads:
  then every answer is dropped, and an answer computed while one of those happened is not stored;
- only while the change counters' view is fresh (the account cache's rule): a stalled poller sends
  every request down the full path, which asks the database;
- a login only while the limiter's memory vouches that neither its pair nor its address is locked
  (`LoginLimiter.repeat_success`, which also does a cheap success's bookkeeping).
So the one-second revocation promise holds as it does for the account cache it sits on.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from authgate.audit.context import MAX_USER_AGENT
from authgate.audit.events import AuditEvent
from authgate.audit.recorder import AuditRecorder
from authgate.auth.account_cache import CachedAccounts
from authgate.auth.account_store import RefreshRecord
from authgate.auth.limiter import LoginLimiter
from authgate.auth.tokens import IssuedToken, TokenService
from authgate.db import versions
from authgate.db.session import Database
from authgate.db.versions import VersionWatch
from authgate.policy.store import PolicyStore

#: Answers kept; past it the oldest go first.
MAX_ANSWERS = 10_000
#: Where the fast path leaves, in the ASGI scope, what the endpoint needs to store its answer.
PENDING = "authgate.token_answer"
_MARK = "\0expires_in\0"


@dataclass(frozen=True, slots=True)
class AnswerParts:
    """What the endpoint hands `TokenAnswers.store` for a cacheable answer."""

    #: The JSON answer as sent (its `expires_in` is recomputed for each repeat).
    body: dict[str, object]
    issued: IssuedToken
    #: The audit events the answer recorded, repeated (new time, user agent, request id) each time.
    events: Sequence[AuditEvent]
    #: Wall-clock seconds after which the answer must be worked out again (a remembered password's end).
    until: float = math.inf
    #: (name, robot) of a Basic login, for the limiter's check and bookkeeping at each repeat.
    login: tuple[str, bool] | None = None
    #: The refresh token a refresh grant redeemed: its `last_used_at` is kept up to date.
    refresh: RefreshRecord | None = None
    #: What counted the login in the metrics (`LoginResult.counted`), counted again at each repeat.
    counted: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"AnswerParts(events={len(self.events)}, login={self.login!r})"  # the body holds tokens


@dataclass(frozen=True, slots=True)
class Pending:
    """What a request going down the full path must find unchanged for its answer to be stored."""

    key: bytes
    epoch: int
    engine: object
    kid: str


@dataclass(slots=True)
class _Answer:
    deadline: float
    head: bytes
    tail: bytes
    expires_at: int
    kid: str
    rows: tuple[dict[str, Any], ...]
    login: tuple[str, bool] | None
    refresh: RefreshRecord | None
    counted: Callable[[], None] | None

    def __repr__(self) -> str:
        return f"_Answer(deadline={self.deadline}, login={self.login!r})"


class TokenAnswers:
    """The stored answers; `start` binds what they depend on (in the lifespan), `stop` unbinds."""

    def __init__(self, max_answers: int = MAX_ANSWERS) -> None:
        self.max_answers = max_answers
        self._key = secrets.token_bytes(32)
        self._answers: dict[bytes, _Answer] = {}
        self._epoch = 0
        self._unlisten: Callable[[], None] | None = None
        self.running = False
        #: Answers sent from memory, for tests and benchmarks.
        self.hits = 0

    def start(self, *, tokens: TokenService, watch: VersionWatch, db: Database, policy: PolicyStore,
              limiter: LoginLimiter, accounts: CachedAccounts, audit: AuditRecorder) -> None:
        self._tokens, self._watch, self._policy = tokens, watch, policy
        self._limiter, self._accounts, self._audit = limiter, accounts, audit
        self._engine: object = policy.engine
        for name in (versions.ACCOUNTS, versions.LIMITER_LOCKS, versions.SIGNING_KEYS):
            watch.watch(name, self._moved)
        self._unlisten = versions.on_account_change(db, self.clear)
        self.running = True

    def stop(self) -> None:
        self.running = False
        self.clear()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def clear(self) -> None:
        """Drop every answer, and refuse those being worked out now."""
        self._epoch += 1
        self._answers.clear()

    async def _moved(self) -> None:
        self.clear()

    def key(self, material: bytes) -> bytes:
        return hashlib.blake2b(material, key=self._key, digest_size=16).digest()

    def _current(self) -> bool:
        """Whether stored answers may be used now; a policy reload drops them."""
        engine = self._policy.engine
        if engine is not self._engine:
            self.clear()
            self._engine = engine
            return False
        return self._watch.fresh

    def pending(self, key: bytes) -> Pending:
        self._current()
        return Pending(key, self._epoch, self._engine, self._tokens.keys.signer.kid)

    def store(self, pending: Pending | None, parts: AnswerParts) -> None:
        """Keep `parts` for the request that `pending` describes, unless anything it depends on changed
        since that request began."""
        if (pending is None or not self.running or pending.epoch != self._epoch
                or pending.engine is not self._policy.engine or pending.kid != self._tokens.keys.signer.kid):
            return
        issued_at = parts.issued.issued_at.timestamp()
        deadline = min(issued_at + self._tokens.reuse_seconds, parts.until)
        if deadline <= time.time():
            return
        pieces = json.dumps({**parts.body, "expires_in": _MARK}).split(json.dumps(_MARK))
        if len(pieces) != 2:  # the mark elsewhere too (it holds a NUL, which no value should): not kept
            return
        head, tail = pieces
        answer = _Answer(deadline, head.encode(), tail.encode(), int(issued_at) + self._tokens.ttl, pending.kid,
                         tuple(AuditRecorder.row_of(event) for event in parts.events), parts.login, parts.refresh,
                         parts.counted)
        self._answers.pop(pending.key, None)
        self._answers[pending.key] = answer
        while len(self._answers) > self.max_answers:
            del self._answers[next(iter(self._answers))]

    async def answer(self, key: bytes, address: str | None, user_agent: bytes | None,
                     request_id: Callable[[], str]) -> tuple[bytes, str] | None:
        """(body, request id) of the stored answer to `key`, its audit events queued and its login
        counted; None when there is none usable now (the request then takes the full path)."""
        found = self._answers.get(key)
        if found is None or not self._current():
            return None
        now = time.time()
        if now >= found.deadline or found.kid != self._tokens.keys.signer.kid:
            del self._answers[key]
            return None
        if found.login is not None and not self._limiter.repeat_success(found.login[0], address, found.login[1]):
            return None
        moment = datetime.fromtimestamp(now, timezone.utc)
        if found.refresh is not None:
            await self._accounts.refresh_token_used(found.refresh, moment)
        if found.counted is not None:
            found.counted()
        rid = request_id()
        # As the full path records it: `context.user_agent`'s cut, and no NUL (`chain.to_row`).
        agent = user_agent.decode("latin-1")[:MAX_USER_AGENT].replace("\0", "") if user_agent else None
        for template in found.rows:
            row = template.copy()
            row["time"], row["user_agent"], row["request_id"] = moment, agent, rid
            self._audit.record_row(row)
        self.hits += 1
        return found.head + str(found.expires_at - int(now)).encode() + found.tail, rid
