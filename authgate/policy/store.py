"""`PolicyStore`: the live policy behind `resources.policy`, reloaded when its files change, or, with
`policy_source: database`, when a new one is pushed (the app's change poller calls `apply_pushed`).

Polling mtimes (every 0.5 s by default) rather than inotify: it works the same on bind mounts,
Kubernetes ConfigMap symlink swaps and network filesystems, and costs a few `stat` calls.
A broken edit never replaces the last good policy: the server keeps deciding with it, logs every
problem as `file:line: message` and reports the policy stale in `/healthz` and the metrics until a
good version loads. Stale is not unready: behind a load balancer, one typo copied to every replica
would otherwise take them all out while each still serves correctly. Broken at start (nothing good
to keep, everything denied) is unready.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from authgate.audit.events import AuditEvent, AuditSink
from authgate.policy.engine import Explanation, PolicyEngine
from authgate.policy.load import (
    PolicyIssue,
    PolicyLoadError,
    builtin_policy,
    load_policy,
    parse_policies,
    policy_files,
)
from authgate.policy.model import ACTIONS, Policy, Rule
from authgate.readiness import Readiness
from authgate.subject import Subject
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

NOT_READY_KEY = "policy"
#: Who reloads a policy: this server (by host name, which replica), not `anonymous`.
_SERVER = Subject("user", socket.gethostname()[:255] or "authgate")
_Fingerprint = tuple[tuple[str, int, int, int], ...]


class PolicyStore:
    """Implements `Authorizer` (and the catalog/immutable-tag queries) by delegating to the current engine."""

    def __init__(self, path: Path | None, audit: AuditSink | None = None, readiness: Readiness | None = None,
                 interval: float = 0.5) -> None:
        """`audit` records each reload and failure; `readiness` hears of a policy broken at start
        (unready) or since (degraded). Without them (a CLI's one-off load) only the log hears."""
        self.path = path
        self.audit = audit
        self.readiness = readiness
        self.interval = interval
        self.engine = PolicyEngine(builtin_policy() if path is None else Policy(rules=()))
        self.problems: list[PolicyIssue] = []
        self._fingerprint: _Fingerprint | None = None
        self._task: asyncio.Task[None] | None = None

    # -- Authorizer and friends -------------------------------------------------------------------
    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        return self.engine.allowed_actions(subject, repository, address)

    def explain(self, subject: Subject, repository: str, actions: Iterable[str] = ACTIONS,
                address: str | None = None) -> Explanation:
        return self.engine.explain(subject, repository, actions, address)

    def immutable_tag_rule(self, repository: str, tag: str) -> Rule | None:
        return self.engine.immutable_tag_rule(repository, tag)

    def filter_pullable(self, subject: Subject, repositories: Iterable[str], address: str | None = None) -> list[str]:
        return self.engine.filter_pullable(subject, repositories, address)

    # -- loading ----------------------------------------------------------------------------------
    def _fingerprint_now(self) -> _Fingerprint:
        assert self.path is not None
        entries = []
        for file in policy_files(self.path):
            try:
                st = os.stat(file)
            except OSError:
                entries.append((str(file), -1, -1, -1))
                continue
            entries.append((str(file), st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(entries)

    async def reload_if_changed(self) -> bool | None:
        """Reload when the files changed: True if a new policy is live, False if the new version is
        broken (the last good one stays), None if nothing changed."""
        path = self.path
        if path is None:
            return None
        try:
            fingerprint = self._fingerprint_now()
        except OSError as exc:
            fingerprint = ((f"error: {exc}", 0, 0, 0),)
        if fingerprint == self._fingerprint:
            return None
        first = self._fingerprint is None
        self._fingerprint = fingerprint
        try:
            engine = await asyncio.to_thread(_compile, path)
        except PolicyLoadError as exc:
            await self._failed(exc.issues, first)
            return False
        except OSError as exc:
            await self._failed([PolicyIssue(str(self.path), 0, f"cannot read: {exc}")], first)
            return False
        await self._install(engine, first, ", ".join(engine.policy.files))
        return True

    async def apply_pushed(self, files: tuple[tuple[str, str], ...] | None, origin: str) -> bool:
        """Make the pushed policy `files` live (None: nothing pushed yet, the built-in policy). A set
        that does not load here (pushed by a newer authgate) keeps the last good policy, as a broken
        file edit does. Returns whether the new policy is live."""
        first = self._fingerprint is None
        self._fingerprint = ((origin, 0, 0, 0),)
        if files is None:
            await self._install(PolicyEngine(builtin_policy()), first, "the built-in policy (nothing pushed yet)")
            return True
        try:
            engine = await asyncio.to_thread(lambda: PolicyEngine(parse_policies(list(files))))
        except PolicyLoadError as exc:
            if first:
                self.engine = PolicyEngine(Policy(rules=()))  # nothing good to keep: deny everything
            await self._failed(exc.issues, first)
            return False
        await self._install(engine, first, f"{', '.join(engine.policy.files)} of {origin}")
        return True

    async def _install(self, engine: PolicyEngine, first: bool, source: str) -> None:
        self.engine = engine
        self.problems = []
        policy = engine.policy
        log.info("policy %s: %d rules, %d teams declared in the files (teams from the database apply too) from %s",
                 "loaded" if first else "reloaded", len(policy.rules), len(policy.teams), source)
        if self.readiness is not None:
            self.readiness.recover(NOT_READY_KEY)
        await self._audit(AuditEvent(
            action="policy:reload", actor=_SERVER, actor_type="server",
            details={"files": list(policy.files), "rules": len(policy.rules), "teams": len(policy.teams),
                     "source": source},
        ))

    async def _failed(self, issues: list[PolicyIssue], first: bool) -> None:
        self.problems = issues
        for issue in issues:
            log.error("policy %s: %s", "not loaded" if first else "not reloaded, keeping the last good one", issue,
                      extra={"file": issue.file, "line": issue.line})
        state = "invalid (denying everything)" if first else "stale"
        if self.readiness is not None:
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            (self.readiness.block if first else self.readiness.degrade)(NOT_READY_KEY, f"{state}: {issues[0]}{more}")
        await self._audit(AuditEvent(
            action="policy:reload:failure", actor=_SERVER, actor_type="server", outcome="failure",
            reason=str(issues[0]), details={"problems": [str(i) for i in issues[:20]]},
        ))

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load now, then watch the files in a background task until `stop()`."""
        if self.path is None:
            return
        await self.reload_if_changed()
        self._task = asyncio.create_task(self._watch(), name="policy-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reload_if_changed()
            except Exception:  # keep watching: a bug here must not freeze the policy silently
                log.exception("policy watcher failed; retrying")

    async def _audit(self, event: AuditEvent) -> None:
        if self.audit is None:
            return
        try:
            await self.audit.record(event)
        except Exception:
            log.exception("could not record audit event %s", event.action)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None


def _compile(path: Path) -> PolicyEngine:
    return PolicyEngine(load_policy(path))

