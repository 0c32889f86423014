"""The chain's decision table: first yes or no decides, not mine passes on, down is skipped, ends in deny."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from authgate.auth.account_store import UserRecord
from authgate.auth.credentials import BasicCredentials, Secret
from authgate.auth.authn import IdentityUnavailable
from authgate.identity.base import Answer, SourceUnavailable
from authgate.identity.chain import IdentityChain
from authgate.subject import Subject

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Table:
    """A source whose answer is fixed: the chain's logic is pure, so a table of cases tests it."""

    kind = "table"

    def __init__(self, name: str, answer: str) -> None:
        self.name = name
        self.answer = answer

    async def authenticate(self, username: str, password: Secret) -> Answer:
        return await self.lookup(username)

    async def lookup(self, username: str) -> Answer:
        if self.answer == "down":
            raise SourceUnavailable("cannot reach ldap://10.0.0.1: timeout")
        if self.answer == "yes":
            return Answer.yes(Subject("user", username, source=self.name))
        return Answer.no("wrong password") if self.answer == "no" else Answer.not_mine()

    async def check(self) -> None:
        return None

    def describe(self) -> str:
        return self.name


CASES = [
    (["yes"], "a"),
    (["not_mine", "yes"], "b"),
    (["no", "yes"], "deny:a"),
    (["down", "yes"], "b"),
    (["down", "no"], "deny:b"),
    (["not_mine", "not_mine"], "deny:"),
    (["not_mine", "down"], "unavailable"),
    (["down", "down"], "unavailable"),
]


@pytest.mark.parametrize(("answers", "expected"), CASES)
async def test_chain_decisions(answers: list[str], expected: str) -> None:
    registry = CollectorRegistry()
    chain = IdentityChain([Table(name, a) for name, a in zip("ab", answers)], registry)
    credentials = BasicCredentials("alice", Secret("pw"))
    if expected == "unavailable":
        with pytest.raises(IdentityUnavailable, match="try again later"):
            await chain.authenticate_user("alice", credentials)
        return
    result = await chain.authenticate_user("alice", credentials)
    if expected.startswith("deny:"):
        assert result.subject is None and result.source == expected.removeprefix("deny:")
    else:
        assert result.subject is not None and result.subject.source == expected == result.source


async def test_a_skipped_source_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    chain = IdentityChain([Table("corp", "down"), Table("other", "yes")], registry)
    with caplog.at_level(logging.WARNING):
        assert await chain.resolve("alice") is not None
    assert "identity source corp is unavailable, skipped: cannot reach ldap://10.0.0.1" in caplog.text
    assert registry.get_sample_value("authgate_identity_source_unavailable_total", {"source": "corp"}) == 1


class Workloads(Table):
    """A source that also vouches for robots (as CI workloads do)."""

    def robot(self, name: str) -> Subject | None:
        return Subject("robot", name) if name == "ci" else None


class Linked(Table):
    """A source whose linked users a refresh checks again (as device login does)."""

    async def recheck(self, user: UserRecord) -> UserRecord | None:
        if self.answer == "down":
            raise SourceUnavailable("provider unreachable")
        return user if self.answer == "yes" else None


async def test_robots_and_rechecks_ask_only_the_sources_that_offer_them() -> None:
    workloads, linked = Workloads("ci", "not_mine"), Linked("sso", "no")
    bare = IdentityChain([Table("corp", "not_mine"), workloads, linked])
    assert bare.robot("ci") is None, "without the capability declared, no source is asked"
    chain = IdentityChain([Table("corp", "not_mine"), workloads, linked], robots=[workloads], rechecks=[linked])
    assert chain.robot("ci") == Subject("robot", "ci") and chain.robot("other") is None
    alice = UserRecord(1, "alice", "", False, False, 0, frozenset(), datetime.now(timezone.utc))
    assert await bare.recheck(alice) is alice
    assert await chain.recheck(alice) is None, "the provider no longer vouches for alice"
    with pytest.raises(IdentityUnavailable):
        await IdentityChain([Linked("sso", "down")], rechecks=[Linked("sso", "down")]).recheck(alice)
