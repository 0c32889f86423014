"""`authgate policy check | explain | test | push | pushed`: tools for the people who write policies."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from authgate.cli import policy_push
from authgate.cli.common import settings_from
from authgate.cli.datadir import location
from authgate.policy.engine import Explanation, PolicyEngine
from authgate.policy.load import PolicyLoadError, builtin_policy, load_policy
from authgate.policy.model import ACTIONS
from authgate.policy.testing import SubjectSyntaxError, load_cases, parse_subject, run_case
from authgate.settings import Settings
from authgate.subject import Subject


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("policy", help="check, explain, test and push policy files")
    commands = parser.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)

    check = commands.add_parser("check", help="validate policy files; prints file:line: message, exit 1 on error")
    check.add_argument("path", nargs="?", type=Path, help="file or directory (default: $AUTHGATE_POLICIES or ./policies)")
    check.set_defaults(handler=_check)

    explain = commands.add_parser("explain", help="which actions SUBJECT may do on REPOSITORY, and the rules that decided")
    explain.add_argument("subject", help="anonymous, user:NAME (or NAME) or robot:NAME")
    explain.add_argument("repository")
    explain.add_argument("actions", nargs="*", metavar="ACTION", help="pull, push, delete (default: all)")
    explain.add_argument("--team", action="append", default=[], metavar="T",
                         help="a team of the subject (repeatable); added to its teams from the database")
    explain.add_argument("--from", dest="address", metavar="ADDRESS", help="client address, for rules with from:")
    explain.add_argument("--tag", help="also say whether this tag is immutable in REPOSITORY")
    explain.add_argument("--policies", type=Path, help="policy file or directory (default: $AUTHGATE_POLICIES, "
                         "else the built-in default)")
    explain.add_argument("--no-db", action="store_true", help="do not look up the subject's teams in the database")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(handler=_explain)

    test = commands.add_parser("test", help="run the cases in PATH/tests/*.yaml; exit 1 on failure")
    test.add_argument("path", nargs="?", type=Path, help="policy directory (default: $AUTHGATE_POLICIES or ./policies)")
    test.add_argument("--tests", type=Path, help="directory of test cases (default: PATH/tests)")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    test.set_defaults(handler=_test)

    policy_push.register(commands, _policy_path, _print_problems)


def _policy_path(args: argparse.Namespace, settings: Settings) -> Path:
    """PATH, else the configured directory, else `./policies` (the files being written), saying so: the
    server itself uses the built-in policy while `policies` is not set, and `explain` follows the server."""
    path: Path | None = args.path or settings.policies
    if path is None:
        if settings.policy_source == "files":
            print("authgate: note: policies is not set (AUTHGATE_POLICIES): using ./policies; `authgate serve` "
                  "uses the built-in policy until it is set", file=sys.stderr)
        return Path("policies")
    return path


def _print_problems(exc: PolicyLoadError) -> int:
    for issue in exc.issues:
        print(issue)
    print(f"authgate: {len(exc.issues)} problem(s) in the policy", file=sys.stderr)
    return 1


def _check(args: argparse.Namespace) -> int:
    path = _policy_path(args, settings_from(args))
    try:
        policy = load_policy(path)
    except PolicyLoadError as exc:
        return _print_problems(exc)
    print(f"ok: {len(policy.rules)} rules, {len(policy.teams)} teams declared in {', '.join(policy.files)}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    bad = [a for a in args.actions if a not in ACTIONS]
    if bad:
        print(f"authgate: unknown action {bad[0]!r}: use pull, push or delete", file=sys.stderr)
        return 2
    path: Path | None = args.policies or settings.policies
    pushed = args.policies is None and settings.policy_source == "database"
    if path is None and not pushed and Path("policies").is_dir():
        print("authgate: note: policies is not set (AUTHGATE_POLICIES): explaining the built-in policy, as "
              "`authgate serve` would decide; --policies policies for the files in ./policies", file=sys.stderr)
    try:
        if pushed:  # as the servers decide: the newest push
            policy, what = policy_push.pushed_policy(settings)
            print(f"authgate: note: explaining {what}; --policies DIR for files", file=sys.stderr)
            engine = PolicyEngine(policy)
        else:
            engine = PolicyEngine(load_policy(path) if path is not None else builtin_policy())
        subject = parse_subject(args.subject, frozenset(args.team))
    except PolicyLoadError as exc:
        return _print_problems(exc)
    except SubjectSyntaxError as exc:
        print(f"authgate: {exc}", file=sys.stderr)
        return 2
    origins = [(team, "given with --team") for team in sorted(args.team)]
    if subject.kind == "user" and not args.no_db:
        teams, found = _source_teams(settings, subject.name)
        subject = Subject(subject.kind, subject.name, subject.teams | teams)
        origins += found
    explanation = engine.explain(subject, args.repository, args.actions or ACTIONS, args.address)
    origins += [(team, "policy file teams:") for team in sorted(explanation.teams - subject.teams)]
    immutable = engine.immutable_tag_rule(args.repository, args.tag) if args.tag else None
    if args.json:
        data = explanation.as_dict()
        if args.tag:
            data["tag"] = {"tag": args.tag, "immutable": immutable is not None,
                           "rule": None if immutable is None else immutable.ref}
        data["team_origins"] = [{"team": team, "via": via} for team, via in origins]
        print(json.dumps(data, indent=2))
    else:
        _print_explanation(explanation)
        if args.tag:
            print(f"  tag {args.tag}: " + (f"immutable by {immutable.ref}" if immutable else "not immutable"))
        for team, via in origins:
            print(f"  team {team}: {via}")
    return 0


def _print_explanation(explanation: Explanation) -> None:
    teams = f" (teams: {', '.join(sorted(explanation.teams))})" if explanation.teams else ""
    where = f" from {explanation.address}" if explanation.address else ""
    print(f"{explanation.subject}{teams} on {explanation.repository}{where}")
    width = max(len(d.action) for d in explanation.decisions)
    for decision in explanation.decisions:
        print(f"  {decision.action.ljust(width)}  {decision.reason}")


def _source_teams(settings: Settings, user: str) -> tuple[frozenset[str], list[tuple[str, str]]]:
    """The user's teams and where each came from: through the identity sources when an identity
    file is configured (LDAP groups, nested or mapped), else from the database."""
    if settings.identity is None:
        known, teams = _database_teams(settings, user)
        if known is False:
            print(f"authgate: warning: no user named {user!r} in the database ({location(settings)}): "
                  "explaining as if it existed", file=sys.stderr)
        return teams, [(team, "database") for team in sorted(teams)]
    from authgate.identity.base import IdentityConfigError
    from authgate.identity.report import report_user

    try:
        report = report_user(settings, user)
    except IdentityConfigError as exc:
        print(f"authgate: warning: teams not read from the identity sources ({exc}); use --team", file=sys.stderr)
        return frozenset(), []
    if report.verdict != "yes":
        print(f"authgate: warning: {user} not found by the identity sources ({report.reason}); use --team",
              file=sys.stderr)
    return report.teams, [(o.team, o.via) for o in report.origins]


def _database_teams(settings: Settings, user: str) -> tuple[bool | None, frozenset[str]]:
    """Whether the user exists (None: no database to ask) and its teams from the database; the CLI
    must work without one."""
    if not settings.database_url and not (settings.data / "authgate.db").exists():
        return None, frozenset()

    async def query() -> tuple[bool | None, frozenset[str]]:
        from sqlalchemy import select

        from authgate.db.models import Membership, Team, User
        from authgate.db.session import Database

        db = Database(settings.database)
        try:
            async with db.session() as session:
                if await session.scalar(select(User.id).where(User.name == user)) is None:
                    return False, frozenset()
                rows = await session.scalars(
                    select(Team.name).join(Membership, Membership.team_id == Team.id)
                    .join(User, User.id == Membership.user_id).where(User.name == user)
                )
                return True, frozenset(rows)
        finally:
            await db.close()

    try:
        return asyncio.run(query())
    except Exception as exc:  # a missing or old database only loses the DB teams
        print(f"authgate: warning: teams not read from the database ({type(exc).__name__}); use --team",
              file=sys.stderr)
        return None, frozenset()


def _test(args: argparse.Namespace) -> int:
    path = _policy_path(args, settings_from(args))
    try:
        engine = PolicyEngine(load_policy(path))
    except PolicyLoadError as exc:
        return _print_problems(exc)
    tests_dir: Path = args.tests or (path if path.is_dir() else path.parent) / "tests"
    cases, issues = load_cases(tests_dir)
    for issue in issues:
        print(issue)
    if issues:
        print(f"authgate: {len(issues)} problem(s) in the test cases", file=sys.stderr)
        return 1
    if not cases:
        print(f"authgate: no test cases in {tests_dir}/*.yaml", file=sys.stderr)
        return 1
    failed = 0
    for case in cases:
        result = run_case(engine, case)
        if result.passed:
            if args.verbose:
                print(f"PASSED {case.where} {case.name}")
            continue
        failed += 1
        print(f"FAILED {case.where} {case.name}")
        for failure in result.failures:
            print(f"    {failure}")
    passed = len(cases) - failed
    print(f"{failed} failed, {passed} passed" if failed else f"{passed} passed")
    return 1 if failed else 0
