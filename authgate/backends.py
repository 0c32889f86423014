"""Which `routes.Backend` answers `/v2/`: the embedded store, the upstream gateway, or none.

Here, above both `registry/` and `gateway/`, so neither imports the other's mode: `gateway/`
implements the registry's contract, and `registry/` never needs to know it exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from authgate.registry.routes import Backend
from authgate.resources import Resources


@asynccontextmanager
async def open_backend(resources: Resources) -> AsyncIterator[Backend | None]:
    """The backend for the configured mode, held open for the app's lifetime (None in token-server
    mode, where `/v2/` is the registry's own and authgate answers it with a pointer there)."""
    settings = resources.settings
    if settings.token_server_only:
        yield None
    elif settings.gateway:
        from authgate.gateway.backend import open_upstream  # aiohttp and the upstream client: gateway mode only

        async with open_upstream(settings, resources.auth.tokens, resources.readiness, resources.policy,
                                 resources.audit, resources.db) as gateway:
            yield gateway
    else:
        from authgate.registry.embedded import open_embedded

        async with open_embedded(settings, resources.policy, resources.audit, resources.readiness) as embedded:
            yield embedded
