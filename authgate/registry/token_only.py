"""Token-server mode (`registry_url` set): authgate issues tokens for a stock registry and serves no
`/v2/` of its own. Before this mode existed, `/v2/` kept answering from a hidden embedded store, so a
push to authgate's address landed where the real registry never saw it; now it is a clear refusal
naming the registry to use."""

from __future__ import annotations

from urllib.parse import urlsplit

from authgate.errors import ErrorCode, RegistryError
from authgate.settings import Settings


def not_served_here(settings: Settings) -> RegistryError:
    """404 (there is no registry at this address), OCI-format, saying where the registry is."""
    host = urlsplit(settings.registry_url).netloc
    return RegistryError(
        ErrorCode.UNSUPPORTED,
        f"authgate here is only the token server of the registry at {settings.registry_url}: push and pull "
        f"there (docker login {host})",
        status=404,
    )

