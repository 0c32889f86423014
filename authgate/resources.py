"""What the running process holds: built once in the lifespan (`authgate.app`), then handed to the
routes as they are made. `app.state.resources` keeps it for tests and tools; no handler looks it up."""

from __future__ import annotations

from dataclasses import dataclass

from authgate.audit.events import AuditSink
from authgate.auth.services import AuthServices
from authgate.auth.token_answers import TokenAnswers
from authgate.db.session import Database
from authgate.identity.chain import IdentityChain
from authgate.policy.store import PolicyStore
from authgate.readiness import Readiness
from authgate.registry.routes import Backend
from authgate.settings import Settings


@dataclass
class Resources:
    settings: Settings
    db: Database
    #: The live policy (the built-in one without policy files).
    policy: PolicyStore
    audit: AuditSink
    #: Signing keys, token service, password verifier, login limiter (authgate.auth.services).
    auth: AuthServices
    #: The identity sources as built (`auth.identity` is the same chain, seen through auth's protocol).
    identity: IdentityChain
    #: What `/readyz` and `/healthz` report; the policy store and the gateway write to it.
    readiness: Readiness
    #: What answers `/v2/` (`authgate.backends.open_backend`); None in token-server mode.
    backend: Backend | None = None
    #: `/token` answers repeated from memory (authgate.auth.token_answers), once started.
    answers: TokenAnswers | None = None

