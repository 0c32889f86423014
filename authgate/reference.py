"""Value types parsed at the boundary: nothing downstream handles raw names, tags or digests.

Grammars from the OCI distribution spec ("Pulling manifests") and distribution's
`reference/regexp.go`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Self

from authgate.errors import ErrorCode, RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_NAME_RE = re.compile(NAME_PATTERN)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
MAX_NAME_LENGTH = 255

#: Supported algorithms and the exact length of their hex encoding.
_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True, order=True, slots=True)
class RepositoryName:
    value: str

    @classmethod
    def parse(cls, raw: str) -> Self:
        if len(raw) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(raw):
            raise RegistryError(ErrorCode.NAME_INVALID, f"invalid repository name: {raw[:300]!r}")
        return cls(raw)

    @property
    def namespace(self) -> str:
        """The first path component: `alice` in `alice/app`."""
        return self.value.split("/", 1)[0]

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, order=True, slots=True)
class Tag:
    value: str

    @classmethod
    def parse(cls, raw: str) -> Self:
        if not _TAG_RE.fullmatch(raw):
            raise RegistryError(ErrorCode.TAG_INVALID, f"invalid tag: {raw[:200]!r}")
        return cls(raw)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, order=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, raw: str) -> Self:
        match = _DIGEST_RE.fullmatch(raw)
        if not match:
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"invalid digest: {raw[:200]!r}")
        algorithm, encoded = match.groups()
        length = _ALGORITHMS.get(algorithm)
        if length is None:
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"unsupported digest algorithm {algorithm!r}; use sha256 or sha512")
        if len(encoded) != length or not re.fullmatch(r"[a-f0-9]+", encoded):
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"invalid {algorithm} digest: {raw[:200]!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Self:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> "hashlib._Hash":
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def is_digest(raw: str) -> bool:
    """A manifest reference is a digest if it holds a colon (tags cannot)."""
    return ":" in raw


def parse_reference(raw: str) -> Tag | Digest:
    return Digest.parse(raw) if is_digest(raw) else Tag.parse(raw)
