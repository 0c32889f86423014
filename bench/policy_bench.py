"""Policy engine speed with a large policy: 10,000 rules, 1,000 teams.

Prints decisions per second of the indexed engine against a naive scan of every rule (the baseline,
measured in the same run), and the time to filter a 100,000-repository catalog for one subject.
Targets (issue #3): a decision in under 100 µs, the catalog filter in under 1 s.

    python bench/policy_bench.py [--rules 10000] [--teams 1000] [--catalog 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authgate.policy.engine import PolicyEngine  # noqa: E402
from authgate.policy.load import parse_policies  # noqa: E402
from authgate.policy.model import Policy, Rule  # noqa: E402
from authgate.subject import Subject  # noqa: E402


def make_policy(rules: int, teams: int, rng: random.Random) -> str:
    """A policy shaped like a big organisation's: per-team rules, a few global ones, user exceptions."""
    lines = ["teams:"]
    for t in range(teams):
        members = ", ".join(f"u{rng.randrange(10_000):05d}" for _ in range(5))
        lines.append(f"  t{t:04d}: [{members}]")
    lines += [
        "rules:",
        "  - {name: admins, subjects: [\"team:admins\"], repositories: [\"**\"], allow: [\"*\"]}",
        "  - {name: own, subjects: [\"user:*\"], repositories: [\"${user}/**\"], allow: [pull, push, delete]}",
        "  - {name: team-ns, subjects: [\"team:*\"], repositories: [\"${team}/**\"], allow: [pull, push]}",
        "  - {name: public, subjects: [anonymous, \"*\"], repositories: [\"public/**\"], allow: [pull]}",
        "  - {name: prod-no-delete, subjects: [\"*\"], repositories: [\"prod/**\"], deny: [delete]}",
    ]
    count = 5
    per_team = max(1, (rules - count) * 9 // 10 // teams)
    for t in range(teams):
        for k in range(per_team):
            kind = k % 3
            if kind == 0:
                lines.append(f"  - {{name: t{t}-r{k}, subjects: [\"team:t{t:04d}\"], "
                             f"repositories: [\"shared/t{t:04d}-{k}/*\"], allow: [pull, push]}}")
            elif kind == 1:
                lines.append(f"  - {{name: t{t}-r{k}, subjects: [\"team:t{(t + 1) % teams:04d}\"], "
                             f"repositories: [\"t{t:04d}/**/cache\"], allow: [pull]}}")
            else:
                lines.append(f"  - {{name: t{t}-r{k}, subjects: [\"team:t{t:04d}\"], "
                             f"repositories: [\"t{t:04d}/legacy-*/**\"], deny: [push]}}")
            count += 1
    u = 0
    while count < rules:
        lines.append(f"  - {{name: u-{u}, subjects: [\"user:u{u % 10_000:05d}\"], "
                     f"repositories: [\"proj-{u % 500}/**\"], allow: [pull]}}")
        u += 1
        count += 1
    return "\n".join(lines) + "\n"


class NaiveEngine:
    """The baseline: every rule checked for every decision, no index (what a first version would do)."""

    def __init__(self, policy: Policy, engine: PolicyEngine) -> None:
        self.rules = policy.rules
        self.engine = engine

    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        teams = self.engine.teams_of(subject)
        allow: set[str] = set()
        deny: set[str] = set()
        for rule in self.rules:
            if rule.immutable_tags or rule.bind_subject(subject.kind, subject.name, teams) is None:
                continue
            if self._repo(rule, subject, teams, repository):
                allow |= rule.allow
                deny |= rule.deny
        return frozenset(allow - deny)

    def _repo(self, rule: Rule, subject: Subject, teams: frozenset[str], repository: str) -> bool:
        return self.engine._matches(rule, subject, teams, repository, None)


def workload(n: int, teams: int, rng: random.Random) -> list[tuple[Subject, str]]:
    out = []
    for _ in range(n):
        own = [f"t{rng.randrange(teams):04d}" for _ in range(rng.randint(1, 5))]
        subject = Subject("user", f"u{rng.randrange(10_000):05d}", frozenset(own))
        t = rng.choice(own) if rng.random() < 0.5 else f"t{rng.randrange(teams):04d}"
        repository = rng.choice([
            f"{t}/api", f"{t}/a/b/cache", f"{t}/legacy-x/y", f"shared/{t}-0/img", f"public/base/{t}",
            f"prod/{t}", f"{subject.name}/tool", f"proj-{rng.randrange(500)}/x", f"nobody/{t}",
        ])
        out.append((subject, repository))
    return out


def per_decision(engine: PolicyEngine | NaiveEngine, cases: list[tuple[Subject, str]]) -> float:
    """CPU seconds per decision: on a shared machine wall time mostly measures the neighbours."""
    start = time.process_time()
    for subject, repository in cases:
        engine.allowed_actions(subject, repository)
    return (time.process_time() - start) / len(cases)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=1_000)
    parser.add_argument("--catalog", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    text = make_policy(args.rules, args.teams, rng)
    start = time.perf_counter()
    policy = parse_policies([("bench.yaml", text)])
    engine = PolicyEngine(policy)
    load_s = time.perf_counter() - start
    print(f"policy: {len(policy.rules)} rules, {len(policy.teams)} teams declared "
          f"({len(text) // 1024} KiB of YAML), parsed and indexed in {load_s:.2f} s")

    cases = workload(args.decisions, args.teams, rng)
    naive = NaiveEngine(policy, engine)
    sample = cases[: max(200, args.decisions // 50)]
    mismatches = sum(engine.allowed_actions(s, r) != naive.allowed_actions(s, r) for s, r in sample)
    if mismatches:
        print(f"ERROR: indexed and naive engines disagree on {mismatches} of {len(sample)} decisions")
        return 1
    per_decision(engine, cases[:1000])  # warm up
    indexed = per_decision(engine, cases)
    baseline = per_decision(naive, sample)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; times below are CPU time")
    print(f"decision (indexed): {indexed * 1e6:8.1f} µs  = {1 / indexed:10,.0f} decisions/s   target < 100 µs: "
          f"{'ok' if indexed < 100e-6 else 'MISSED'}")
    print(f"decision (naive scan, baseline): {baseline * 1e6:8.1f} µs  = {1 / baseline:10,.0f} decisions/s")
    print(f"speed-up over the baseline: {baseline / indexed:,.0f}x")

    owner_teams = frozenset(f"t{rng.randrange(args.teams):04d}" for _ in range(3))
    subject = Subject("user", "u00042", owner_teams)
    kinds = ["{t}/svc-{i}", "{t}/a/{i}/cache", "shared/{t}-0/{i}", "public/{t}-{i}", "prod/{t}/{i}", "misc-{i}/x"]
    catalog = [
        rng.choice(kinds).format(t=f"t{rng.randrange(args.teams):04d}", i=i) for i in range(args.catalog)
    ]
    start, wall = time.process_time(), time.perf_counter()
    visible = engine.filter_pullable(subject, catalog)
    filter_s, filter_wall = time.process_time() - start, time.perf_counter() - wall
    tenth = catalog[: args.catalog // 10]
    start = time.process_time()
    slow = [r for r in tenth if "pull" in engine.allowed_actions(subject, r)]
    per_repo_s = (time.process_time() - start) * 10
    if slow != engine.filter_pullable(subject, tenth):
        print("ERROR: the catalog filter disagrees with per-repository decisions")
        return 1
    print(f"catalog filter: {len(catalog):,} repositories -> {len(visible):,} visible in {filter_s:.3f} s CPU "
          f"({filter_wall:.3f} s wall)   target < 1 s: {'ok' if filter_s < 1 else 'MISSED'}")
    print(f"catalog via one decision per repository (baseline, extrapolated): {per_repo_s:.3f} s "
          f"({per_repo_s / filter_s:.1f}x slower)")
    return 0 if indexed < 100e-6 and filter_s < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
