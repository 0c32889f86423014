"""The auth pieces the running process holds, built once in the lifespan from settings."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from authgate.auth.account_cache import CachedAccounts
from authgate.auth.account_store import DatabaseAccounts, UserRecord
from authgate.auth.accounts import count_users
from authgate.auth.bearer_cache import VerifiedTokens
from authgate.auth.authn import Authenticator
from authgate.auth.key_store import KeyStore
from authgate.auth.keys import Algorithm, KeyRing, SigningKeyError, keys_dir
from authgate.auth.hash_slots import HashSlots
from authgate.auth.limiter import LoginLimiter
from authgate.auth.limiter_db import DatabaseLimiterStore
from authgate.auth.passwords import PasswordVerifier, make_context
from authgate.auth.tokens import TokenService
from authgate.auth.unlocks import unlock_source
from authgate.db.session import Database
from authgate.db import versions
from authgate.db.versions import VersionWatch
from authgate.settings import Settings
from authgate.subject import Subject

log = logging.getLogger(__name__)


class IdentityLookup(Protocol):
    """What auth asks of the identity sources (`authgate.identity`, the layer above, which
    implements it) once a token or refresh token is presented: is its account still good?"""

    @property
    def external(self) -> bool:
        """Whether any source other than the local database is configured."""
        ...

    @property
    def rechecks_users(self) -> bool:
        """Whether `recheck` asks any source (a refresh grant's answer then cannot be repeated from memory)."""
        ...

    async def resolve(self, username: str) -> Subject | None:
        """The live subject of a user the local database does not hold; None when gone or disabled."""
        ...

    def robot(self, name: str) -> Subject | None:
        """The live subject of a `robot:NAME` no stored robot has (a CI workload), or None."""
        ...

    async def recheck(self, user: UserRecord) -> UserRecord | None:
        """At a refresh grant: the user as its source still vouches for it, or None."""
        ...


Lookup = TypeVar("Lookup", bound=IdentityLookup)


@dataclass
class AuthServices:
    keys: KeyRing
    tokens: TokenService
    verifier: PasswordVerifier
    limiter: LoginLimiter
    authenticator: Authenticator
    #: The ordered identity sources behind `authenticator`'s user logins (authgate.identity).
    identity: IdentityLookup
    #: Users, robots and refresh tokens from memory; started and stopped by the lifespan.
    accounts: CachedAccounts
    #: Bearer tokens on /v2/, each verified once (authgate.auth.bearer_cache).
    bearer: VerifiedTokens
    #: The one poller of the change counters (authgate.db.versions) that keeps `accounts`, the limiter's
    #: locks and `keys` fresh; started by the lifespan.
    shared: VersionWatch


async def build_auth(settings: Settings, db: Database, identity_for: Callable[[Authenticator], Lookup]
                     ) -> tuple[AuthServices, Lookup]:
    """Load (or create on first start) the signing keys and wire the authenticators;
    `identity_for` builds the identity sources around the local password check (`build_chain`).
    Returns the services and those sources as built (the device login needs them by type)."""
    shared = VersionWatch(db)
    keys = await watch_keys(KeyStore(db, keys_dir(settings.data)), settings.signing_algorithm, shared)
    for key in keys.expiring():
        log.warning(
            "token signing certificate %s expires %s: run `authgate keys rotate` (and in token-server or gateway "
            "mode give the registry the new `authgate keys export-cert` before `authgate keys activate`)",
            key.kid, key.not_after.isoformat(),
        )
    tokens = TokenService(keys, settings.issuer, settings.service, settings.token_ttl)
    verifier = PasswordVerifier(make_context(settings.bcrypt_rounds), cache_ttl=settings.password_cache_ttl)
    # Always in the database, even for one process: N workers or replicas then count guesses together,
    # and a restart does not forget a lockout. Logins that pay no hash pay no round trip either.
    # N workers on one machine share its cores: each takes its share of the password checks at once.
    slots = HashSlots(total=max(2, (os.cpu_count() or 2) // settings.workers) if settings.workers > 1 else None)
    limiter = LoginLimiter(DatabaseLimiterStore(db, shared), slots, unlocks=unlock_source(db))
    accounts = CachedAccounts(DatabaseAccounts(db), shared)
    authenticator = Authenticator(db, accounts, verifier, limiter)
    identity = identity_for(authenticator)
    services = AuthServices(keys, tokens, verifier, limiter, authenticator, identity, accounts,
                            VerifiedTokens(tokens), shared)

    async def forget_verified() -> None:
        """Tokens verified before a key changed are verified again: a removed key's stop at once."""
        services.bearer = VerifiedTokens(tokens)

    shared.watch(versions.SIGNING_KEYS, forget_verified)  # after the ring's reload (watch_keys)
    return services, identity


async def watch_keys(store: KeyStore, algorithm: Algorithm, shared: VersionWatch) -> KeyRing:
    """The ring, updated in place whenever any process rotates, activates or removes a key."""
    ring = await store.ring(algorithm)

    async def reload() -> None:
        try:
            fresh = await store.ring(algorithm, create=False)
        except SigningKeyError as exc:  # keep signing with what we have; say why once per change
            log.error("signing keys changed but cannot be loaded: %s", exc)
            return
        if fresh.signer.kid != ring.signer.kid or set(fresh.by_kid) != set(ring.by_kid):
            log.info("signing keys reloaded: %d keys, signing with %s", len(fresh.keys), fresh.signer.kid)
        ring.update(fresh)

    shared.watch(versions.SIGNING_KEYS, reload)
    return ring


class HoldsAuth(Protocol):
    """What `auth_of` reads (`Resources`), named here so auth/ does not import the app's locator."""

    @property
    def auth(self) -> AuthServices: ...


def auth_of(resources: HoldsAuth) -> AuthServices:
    return resources.auth


async def announce_first_steps(settings: Settings, db: Database) -> None:
    """With no users at all nobody can log in: say exactly what to type next."""
    if await count_users(db):
        return
    host = (settings.registry_url or settings.url).split("://", 1)[-1].rstrip("/")
    log.warning(
        "no users yet. Next, in another terminal (same directory, or AUTHGATE_DATA=%s): "
        "`authgate user add alice` (asks for a password twice); "
        "`docker login %s -u alice`; `docker tag hello %s/alice/hello && docker push %s/alice/hello` "
        "(each user may push to NAME/…; see policies/ for teams)",
        settings.data.resolve(), host, host, host,
    )
