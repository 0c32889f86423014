"""Identity sources: who may log in, and which teams they are in.

An ordered chain (chain.py) asks each configured source (the local database, LDAP directories)
in turn; each answers yes, no or not mine (base.py); the chain ends in deny. The identity file
(config.py, the `identity` setting) lists the sources; docs/identity.md shows working configs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from authgate.auth.authn import Authenticator
from authgate.auth.keys import keys_dir
from authgate.db.session import Database
from authgate.identity.base import IdentityConfigError, IdentitySource, RechecksUsers, VouchesForRobots
from authgate.identity.chain import IdentityChain
from authgate.identity.config import LdapConfig, WorkloadConfig, load_identity
from authgate.identity.local import LocalSource
from authgate.identity.people import PeopleSource
from authgate.identity.people_config import PeopleConfig
from authgate.identity.sealed import Sealer
from authgate.identity.workload import Workloads, WorkloadSource
from authgate.policy.store import PolicyStore
from authgate.policy.workloads import WorkloadRule
from authgate.settings import Settings


def workloads_of(policy: PolicyStore | None) -> Workloads:
    """The live policy's `workloads:` (re-read at every login, so a policy reload applies at once)."""

    def current() -> tuple[WorkloadRule, ...]:
        return policy.engine.policy.workloads if policy is not None else ()

    return current


def build_chain(settings: Settings, db: Database, authenticator: Authenticator,
                registry: CollectorRegistry | None = None, policy: PolicyStore | None = None) -> IdentityChain:
    """The chain from the `identity` setting, wired into `authenticator` (its robots stay local).

    Raises `IdentityConfigError` naming the setting when the file is wrong."""
    sources: list[IdentitySource] = []
    robots: list[VouchesForRobots] = []
    rechecks: list[RechecksUsers] = []
    for config in load_identity(settings.identity):
        if isinstance(config, LdapConfig):
            sources.append(ldap_source_for(config, settings.token_ttl))
        elif isinstance(config, PeopleConfig):
            people = PeopleSource(config, db, Sealer(keys_dir(settings.data)))
            sources.append(people)
            rechecks.append(people)
        elif isinstance(config, WorkloadConfig):
            workload = WorkloadSource(config, db, workloads_of(policy))
            sources.append(workload)
            robots.append(workload)
            # Every CI job logs in with this one name: count failures per address, not per name.
            authenticator.shared_logins |= {config.username}
        else:
            sources.append(LocalSource(db, authenticator._user))
    chain = IdentityChain(sources, registry, robots=robots, rechecks=rechecks)
    authenticator.check_user = chain.authenticate_user
    return chain


def ldap_source_for(config: LdapConfig, token_ttl: int) -> IdentitySource:
    try:  # python-ldap (the `ldap` extra) is needed only when LDAP is configured
        from authgate.identity.ldap_source import LdapSource
    except ImportError:
        raise IdentityConfigError(
            f"identity source {config.name}: LDAP needs python-ldap: pip install 'authgate[ldap]' "
            "(building it needs libldap-dev and libsasl2-dev)") from None
    return LdapSource(config, token_ttl)
