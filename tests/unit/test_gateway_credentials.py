"""Who authgate is to the upstream: minted tokens are scoped per request and cached until shortly
before they expire; Basic credentials never print."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from authgate.gateway.credentials import BasicAuth, MintedToken, MintedTokenAuth, NoAuth, upstream_auth
from authgate.scope import Scope
from authgate.settings import Settings

PULL = [Scope("repository", "alice/app", frozenset({"pull"}))]
PUSH = [Scope("repository", "alice/app", frozenset({"pull", "push"}))]


class CountingMinter:
    def __init__(self, expires_in: int) -> None:
        self.minted: list[list[Scope]] = []
        self.expires_in = expires_in

    def mint(self, access: Sequence[Scope]) -> MintedToken:
        self.minted.append(list(access))
        return MintedToken(f"token-{len(self.minted)}", self.expires_in)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_minted_tokens_are_per_scope_and_cached(anyio_backend: str) -> None:
    minter = CountingMinter(expires_in=300)
    auth = MintedTokenAuth(minter)
    assert await auth.authorization(PULL) == "Bearer token-1"
    assert await auth.authorization(PULL) == "Bearer token-1"
    assert await auth.authorization(PUSH) == "Bearer token-2"
    assert minter.minted == [PULL, PUSH]
    short = CountingMinter(expires_in=20)  # shorter than the refresh margin: never reused
    auth = MintedTokenAuth(short)
    await auth.authorization(PULL)
    await auth.authorization(PULL)
    assert len(short.minted) == 2


def test_modes_from_settings_and_secrets_do_not_print() -> None:
    assert isinstance(upstream_auth(Settings(upstream="http://u")), NoAuth)
    basic = upstream_auth(Settings(upstream="http://u", upstream_username="gw", upstream_password="s3cret-pw"))
    assert isinstance(basic, BasicAuth) and "s3cret-pw" not in repr(basic)
    assert "s3cret-pw" not in repr(Settings(upstream_password="s3cret-pw"))
    with pytest.raises(RuntimeError, match="token service"):
        upstream_auth(Settings(upstream="http://u", upstream_auth="token"))


def test_upstream_tokens_have_their_own_audience() -> None:
    """A token /token gives a user (aud = `service`) must not be one the upstream accepts."""
    assert Settings(upstream="http://u").upstream_audience == "authgate-upstream"
    assert Settings(upstream="http://u", service="reg").upstream_audience == "reg-upstream"
    assert Settings(upstream="http://u", upstream_service="mine").upstream_audience == "mine"
