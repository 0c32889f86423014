import pytest

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName, Tag, parse_reference

SHA256 = "sha256:" + "a" * 64


@pytest.mark.parametrize("name", ["hello", "alice/hello", "a/b/c", "my-app", "my__app", "a.b/c-d_e", "x" * 255])
def test_valid_names(name: str) -> None:
    assert str(RepositoryName.parse(name)) == name


@pytest.mark.parametrize("name", ["", "Hello", "-a", "a-", "a//b", "a/", "/a", "a..b", "a___b", "x" * 256, "a b", "a:b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        RepositoryName.parse(name)
    assert info.value.code is ErrorCode.NAME_INVALID


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A-b.c_d", "x" * 128])
def test_valid_tags(tag: str) -> None:
    assert str(Tag.parse(tag)) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "x" * 129, "a/b", "a:b"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(RegistryError):
        Tag.parse(tag)


@pytest.mark.parametrize(
    "raw",
    [SHA256, "sha512:" + "b" * 128],
)
def test_valid_digests(raw: str) -> None:
    assert str(Digest.parse(raw)) == raw


@pytest.mark.parametrize(
    "raw", ["sha256:" + "a" * 63, "sha256:" + "A" * 64, "md5:" + "a" * 32, "sha512:" + "a" * 64, "sha256", ":", "sha256:"]
)
def test_invalid_digests(raw: str) -> None:
    with pytest.raises(RegistryError) as info:
        Digest.parse(raw)
    assert info.value.code is ErrorCode.DIGEST_INVALID


def test_reference_is_tag_or_digest() -> None:
    assert isinstance(parse_reference("latest"), Tag)
    assert isinstance(parse_reference(SHA256), Digest)
    assert Digest.of(b"") == Digest.parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
