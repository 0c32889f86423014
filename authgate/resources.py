"""What the running process holds: built once in the lifespan, reached through `request.app.state.resources`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from authgate.audit.events import AuditSink
from authgate.db.session import Database
from authgate.policy import Authorizer
from authgate.registry.routes import Backend
from authgate.settings import Settings

if TYPE_CHECKING:
    from authgate.auth.services import AuthServices


@dataclass
class Resources:
    settings: Settings
    db: Database
    policy: Authorizer
    audit: AuditSink
    #: Signing keys, token service, password verifier, login limiter (authgate.auth.services).
    auth: AuthServices | None = None
    #: What answers `/v2/` (`authgate.backends.open_backend`); None in token-server mode.
    backend: Backend | None = None
    #: Reasons the process is not ready (e.g. "policy invalid at start"); `/readyz` fails while any is set.
    not_ready: dict[str, str] = field(default_factory=dict)
    #: Problems that do not stop serving (e.g. a stale policy: the last good one decides); shown by
    #: `/healthz` and metrics. Not a `/readyz` failure: one typo would take every replica out of a balancer.
    degraded: dict[str, str] = field(default_factory=dict)


def resources_of(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources
