"""The policy language as values: subjects, repository globs, rules, teams.

Everything here is compiled once when a policy loads (globs become regexes, CIDRs become networks),
so a decision only runs precompiled matches. Parsing YAML and reporting errors lives in `load.py`;
deciding lives in `engine.py`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authgate.policy.workloads import WorkloadRule

#: What a rule may allow or deny; `*` stands for all three.
ACTIONS: tuple[str, ...] = ("pull", "push", "delete")
ALL_ACTIONS: frozenset[str] = frozenset(ACTIONS)
PLACEHOLDERS: tuple[str, ...] = ("user", "team", "robot")
SUBJECT_KINDS: tuple[str, ...] = ("user", "team", "robot")

_PLACEHOLDER_RE = re.compile(r"\$\{([^}]*)\}")
# Literal characters a repository name may hold (OCI name grammar: lowercase, digits, separators).
_LITERAL_RE = re.compile(r"[a-z0-9._-]+")
_TAG_GLOB_RE = re.compile(r"[A-Za-z0-9_.*-]{1,128}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PatternError(ValueError):
    """A subject, glob, tag pattern or CIDR that cannot be used; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where something was written, for messages a policy author can jump to."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class SubjectPattern:
    """`anonymous`, `*` (anyone authenticated), or `KIND:NAME` with NAME possibly `*`."""

    kind: str  # "anonymous", "*", "user", "team", "robot"
    name: str = "*"

    @classmethod
    def parse(cls, raw: str) -> SubjectPattern:
        if raw in ("anonymous", "*"):
            return cls(raw, "*")
        kind, sep, name = raw.partition(":")
        if not sep or kind not in SUBJECT_KINDS:
            raise PatternError(
                f"unknown subject {raw!r}: use anonymous, *, user:NAME, team:NAME or robot:NAME (NAME may be *)"
            )
        if name != "*" and not _NAME_RE.fullmatch(name):
            raise PatternError(f"subject {raw!r}: the name must be a plain name or * (no other wildcards)")
        return cls(kind, name)

    @property
    def index_key(self) -> str:
        return self.kind if self.kind in ("anonymous", "*") else f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return self.kind if self.kind in ("anonymous", "*") else f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class RepositoryGlob:
    """A repository pattern: `*` stays within one path segment, `**` spans one or more segments
    (`a/**/b` also matches `a/b`), `${user}`/`${team}`/`${robot}` stand for the subject's names.

    Compiled to one anchored regex; each placeholder becomes a named group checked after the match,
    so a decision never builds a regex.
    """

    source: str
    regex: re.Pattern[str]
    placeholders: frozenset[str]
    #: The first path segment when it is a plain literal (used to index rules), else None.
    first_segment: str | None

    @classmethod
    def parse(cls, raw: str) -> RepositoryGlob:
        if not raw:
            raise PatternError("empty repository pattern: use ** for every repository")
        if raw.startswith("/") or raw.endswith("/") or "//" in raw:
            raise PatternError(f"repository pattern {raw!r}: no leading, trailing or doubled '/'")
        segments = raw.split("/")
        parts: list[str] = []
        placeholders: set[str] = set()
        last = len(segments) - 1
        for i, segment in enumerate(segments):
            if segment == "**":
                if i > 0 and segments[i - 1] == "**":
                    raise PatternError(f"repository pattern {raw!r}: write ** once, not **/**")
                if i == last:
                    parts.append(".+" if i == 0 else "/.+")
                elif i == 0:
                    parts.append("(?:.+/)?")
                else:
                    parts.append("(?:/.+)?")
                continue
            if "**" in segment:
                raise PatternError(f"repository pattern {raw!r}: ** must be a whole path segment, as in a/**/b")
            body = "[^/]+" if segment == "*" else _compile_segment(raw, segment, placeholders)
            # After a leading `**/` the separator is already part of the optional group.
            parts.append(body if i == 0 or (i == 1 and segments[0] == "**") else "/" + body)
        first = segments[0]
        first_segment = first if _LITERAL_RE.fullmatch(first) else None
        return cls(raw, re.compile("".join(parts)), frozenset(placeholders), first_segment)

    def __str__(self) -> str:
        return self.source


def _compile_segment(raw: str, segment: str, placeholders: set[str]) -> str:
    out: list[str] = []
    pos = 0
    for match in _PLACEHOLDER_RE.finditer(segment):
        out.append(_compile_literal(raw, segment[pos : match.start()]))
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise PatternError(
                f"repository pattern {raw!r}: unknown placeholder ${{{name}}} (known: ${{user}}, ${{team}}, ${{robot}})"
            )
        out.append(f"(?P={name})" if name in placeholders else f"(?P<{name}>[^/]+)")
        placeholders.add(name)
        pos = match.end()
    out.append(_compile_literal(raw, segment[pos:]))
    return "".join(out)


def _compile_literal(raw: str, text: str) -> str:
    if "$" in text or "{" in text or "}" in text:
        raise PatternError(f"repository pattern {raw!r}: write placeholders as ${{user}}, ${{team}} or ${{robot}}")
    pieces = text.split("*")
    for piece in pieces:
        if piece and not _LITERAL_RE.fullmatch(piece):
            bad = sorted({c for c in piece if not _LITERAL_RE.fullmatch(c)})
            if any(c.isupper() for c in bad):
                raise PatternError(f"repository pattern {raw!r} can never match: repository names are lowercase")
            raise PatternError(
                f"repository pattern {raw!r}: unsupported character(s) {''.join(bad)!r} "
                "(names hold a-z 0-9 . _ -; wildcards are * and **)"
            )
    return "[^/]*".join(re.escape(p) for p in pieces)


@dataclass(frozen=True, slots=True)
class TagGlob:
    """An `immutable_tags` pattern: `*` matches any run of tag characters."""

    source: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, raw: str) -> TagGlob:
        if not _TAG_GLOB_RE.fullmatch(raw):
            raise PatternError(f"tag pattern {raw!r}: tags hold A-Z a-z 0-9 . _ - (wildcard *), at most 128 long")
        return cls(raw, re.compile(".*".join(re.escape(p) for p in raw.split("*"))))


def parse_network(raw: str) -> Network:
    try:
        return ipaddress.ip_network(raw, strict=False)
    except ValueError as exc:
        raise PatternError(f"address range {raw!r}: {exc} (write CIDRs such as 10.0.0.0/8 or ::1/128)") from exc


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of `rules:`; a rule matches a request when a subject, a repository pattern and
    (if given) an address range all match."""

    name: str
    origin: Origin
    subjects: tuple[SubjectPattern, ...] = ()
    repositories: tuple[RepositoryGlob, ...] = ()
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    networks: tuple[Network, ...] | None = None
    immutable_tags: tuple[TagGlob, ...] = ()
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name} ({self.origin})"

    def __str__(self) -> str:
        """`name (file:line)`: what error messages and logs show (the registry names the rule that refused)."""
        return self.ref

    def bind_subject(self, kind: str, name: str, teams: frozenset[str]) -> frozenset[str] | None:
        """None when no subject pattern matches; else the teams `${team}` may stand for: all of the
        subject's teams when it matched directly (`user:*`, `*`, …), else the teams it matched through."""
        direct = False
        via: set[str] = set()
        for pattern in self.subjects:
            if pattern.kind == "anonymous":
                direct = direct or kind == "anonymous"
            elif pattern.kind == "*":
                direct = direct or kind != "anonymous"
            elif pattern.kind == "team":
                if pattern.name == "*":
                    via.update(teams)
                elif pattern.name in teams:
                    via.add(pattern.name)
            elif pattern.kind == kind and pattern.name in ("*", name):
                direct = True
        if direct:
            return teams
        return frozenset(via) if via else None

    def matches_address(self, address: str | None) -> bool:
        if self.networks is None:
            return True
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


@dataclass(frozen=True, slots=True)
class TeamDeclaration:
    """`teams: {NAME: [members]}` in a policy file: members are `alice`, `user:alice` or `robot:ci`."""

    name: str
    members: frozenset[tuple[str, str]]
    origin: Origin


@dataclass(frozen=True, slots=True)
class Policy:
    """Every rule and team of a set of files, in file order."""

    rules: tuple[Rule, ...]
    teams: tuple[TeamDeclaration, ...] = ()
    files: tuple[str, ...] = ()
    #: CI jobs that act as robots by their issuer's token claims (policy/workloads.py).
    workloads: tuple[WorkloadRule, ...] = ()
