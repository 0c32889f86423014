"""What one event may hold, and how many an unauthenticated client can make us write."""

from __future__ import annotations

import json

import pytest

from authgate.audit.bounds import MAX_DETAILS_BYTES, UnauthenticatedThrottle, bound_event
from authgate.audit.events import AuditEvent
from authgate.subject import Subject


@pytest.mark.parametrize("details", [
    {"requested": ["repository:" + "a" * 250 + f"/{i}:pull" for i in range(64)]},  # many long scopes
    {"requested": "x" * 100_000},
    {f"k{i}": "v" * 400 for i in range(200)},
])
def test_details_are_bounded(details: dict[str, object]) -> None:
    bounded = bound_event(AuditEvent("token:issue", details=details))
    assert bounded.details is not None
    assert len(json.dumps(bounded.details)) <= MAX_DETAILS_BYTES


def test_small_details_are_kept_as_they_are() -> None:
    event = AuditEvent("token:issue", details={"requested": ["repository:a/b:pull"], "granted": []})
    assert bound_event(event) is event


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_unauthenticated_events_are_counted_past_a_limit() -> None:
    clock = Clock()
    throttle = UnauthenticatedThrottle(per_key=3, total=5, window=60, clock=clock)
    failure = AuditEvent("auth:login:failure", Subject("user", "alice"), outcome="failure", address="203.0.113.5")
    recorded = [e for _ in range(10) for e in throttle.admit(failure)]
    assert len(recorded) == 3
    pushed = AuditEvent("manifest:push", Subject("user", "alice"), address="203.0.113.5")
    assert all(throttle.admit(pushed) == [pushed] for _ in range(10)), "authenticated events are never dropped"
    other = AuditEvent("token:issue", address="198.51.100.1")
    assert len([e for _ in range(10) for e in throttle.admit(other)]) == 2, "everyone's total"
    clock.now = 61
    summary, again = throttle.admit(failure)
    assert summary.action == "audit:suppressed" and summary.details == {"action": "auth:login:failure", "count": 7}
    assert again is failure


def test_flat_details_skip_json_only_when_they_cannot_be_too_large() -> None:
    """The request path judges a flat text mapping's size without JSON: a bound it may not exceed.
    Escaped characters (six each as `\\uXXXX`) are where a length-based guess would go wrong."""
    small = AuditEvent("token:issue", details={"grant_type": "basic", "granted": "repository:a/b:pull"})
    assert bound_event(small) is small
    escaped = AuditEvent("token:issue", details={"client_id": "\x01" * 1000})  # 1000 chars, 6000 in JSON
    bounded = bound_event(escaped)
    assert bounded.details is not None and len(json.dumps(bounded.details)) <= MAX_DETAILS_BYTES
