"""The one duration grammar: what it accepts, and that anything else is a DurationError saying why."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from authgate.audit.query import parse_time
from authgate.cli.robots import parse_expiry
from authgate.identity.base import IdentityConfigError
from authgate.identity.config import parse_identity
from authgate.durations import MAX_SECONDS, DurationError, parse_duration, parse_seconds
from authgate.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0), ("3600", 3600), ("30s", 30), ("5m", 300), ("12h", 43200), ("90d", 90 * 86400),
        ("2w", 14 * 86400), (" 10m ", 600), ("5 m", 300), ("1\th", 3600), ("007s", 7),
        (f"{999_999_999}d", MAX_SECONDS), ("0" * 5000 + "1h", 3600),
    ],
)
def test_accepted(text: str, seconds: int) -> None:
    assert parse_seconds(text) == seconds
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty duration"), ("   ", "empty duration"), ("-5m", "'-5m' is not a duration"),
        ("+5m", "is not a duration"), ("1.5h", "'1.5h' is not a duration"), ("²", "'²' is not a duration"),
        ("٣h", "is not a duration"), ("1_000", "is not a duration"), ("h", "is not a duration"),
        ("5 minutes", "unknown unit 'minutes'"), ("5M", "unknown unit 'M'"), ("3y", "unknown unit 'y'"),
        ("1" * 5000, "is too long"), ("1" * 5000 + "h", "is too long"), (f"{1_000_000_000}d", "is too long"),
        ("5m5s", "is not a duration"),
    ],
)
def test_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_seconds(text)
    assert says in str(caught.value) and len(str(caught.value)) < 200


def test_a_unit_can_be_required() -> None:
    assert parse_seconds("90d", unit_required=True) == 90 * 86400
    with pytest.raises(DurationError, match="needs a unit"):
        parse_seconds("90", unit_required=True)


def test_callers_keep_their_own_rules() -> None:
    # Robots: never, a unit, at least an hour; 3600s is new and fine.
    assert parse_expiry("never") is None
    assert parse_expiry("3600s") == timedelta(hours=1)
    for text, says in (("59m", "too short"), ("0h", "too short"), ("90", "needs a unit"), ("1.5h", "not a duration")):
        with pytest.raises(ValueError, match=says):
            parse_expiry(text)
    # Audit: an age or an ISO date; a bare number is a date, an age beyond the calendar is not a time.
    now = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
    assert parse_time("2h", now) == now - timedelta(hours=2)
    assert parse_time("20261128") == datetime(2026, 11, 28, tzinfo=timezone.utc)
    for text in ("99999999d", "1" * 5000 + "d", "-2h"):
        with pytest.raises(ValueError, match="is not a time"):
            parse_time(text, now)
    # Settings: a bare number is seconds, and the error names the setting.
    assert load_settings(environ={"AUTHGATE_TOKEN_TTL": "600"}).token_ttl == 600
    assert load_settings(environ={"AUTHGATE_REFRESH_TOKEN_TTL": "2w"}).refresh_token_ttl == 14 * 86400
    with pytest.raises(SettingsError, match="refresh_token_ttl: must be a number of seconds"):
        load_settings(environ={"AUTHGATE_REFRESH_TOKEN_TTL": "-5m"})
    # Identity: a YAML number or text, `5 m` still accepted; the error names the field and the reason.
    ldap = {"type": "ldap", "name": "corp", "url": "ldap://127.0.0.1:389", "bind_dn": "cn=svc,dc=x",
            "bind_password": "pw", "user_base": "ou=people,dc=x"}
    for value, seconds in ((90, 90), ("5 m", 300), ("1d", 86400)):
        assert getattr(parse_identity({"sources": [{**ldap, "cache_ttl": value}]})[0], "cache_ttl") == seconds
    for value, says in ((True, "True"), (1.5, "'1.5' is not a duration"), ("3y", "unknown unit 'y'")):
        with pytest.raises(IdentityConfigError, match=f"corp.cache_ttl: .*{says}"):
            parse_identity({"sources": [{**ldap, "cache_ttl": value}]})
