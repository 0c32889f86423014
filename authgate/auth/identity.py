"""Who made this request: the contract between auth/ (which proves it) and registry/ (which asks it).

`identify(request)` is implemented by the token-server work; the registry guard calls it once per
`/v2/` request and then checks the route's needed actions against `Identity.granted(...)` and the
live policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from authgate.subject import Subject


@dataclass(frozen=True, slots=True)
class Identity:
    subject: Subject
    #: What the bearer token grants, per (type, name). None when the request carried Basic
    #: credentials (accepted on /v2/ like the `registry` image): then the live policy alone decides.
    token_access: dict[tuple[str, str], frozenset[str]] | None = None

    def token_grants(self, resource_type: str, name: str) -> frozenset[str] | None:
        """Actions the token grants on the resource; None means "no token limit" (Basic)."""
        if self.token_access is None:
            return None
        return self.token_access.get((resource_type, name), frozenset())
