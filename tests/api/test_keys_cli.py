"""`authgate keys` on keys kept in the database: staged rotation for registries that check a
certificate bundle, keys an earlier version kept as files, and a replica without the seal key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet

from authgate.auth.keys import create_key
from tests.api.test_accounts_cli import Cli, cli  # noqa: F401  (the fixture)


def _listed(cli: Cli) -> list[dict[str, str]]:  # noqa: F811
    return [json.loads(line) for line in cli("keys", "list", "--json")[0].splitlines()]


def test_a_staged_key_verifies_but_signs_only_once_activated(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    first = _listed(cli)[0]
    monkeypatch.setenv("AUTHGATE_REGISTRY_URL", "https://registry.example.com")  # token-server mode
    out = cli("keys", "rotate")[0]
    assert "does not sign yet" in out and "authgate keys activate" in out
    staged = next(k for k in _listed(cli) if k["kid"] != first["kid"])
    assert staged["role"] == "staged" and next(k for k in _listed(cli) if k["kid"] == first["kid"])["role"] == "signing"
    bundle = x509.load_pem_x509_certificates(cli("keys", "export-cert")[0].encode())
    assert len(bundle) == 2, "the registry is given the staged key's certificate before it signs"
    assert "is active" in cli("keys", "activate", staged["kid"])[0]
    roles = {k["kid"]: k["role"] for k in _listed(cli)}
    assert roles == {staged["kid"]: "signing", first["kid"]: "verifying"}
    cli("keys", "remove", first["kid"])
    assert "only active" in cli("keys", "remove", staged["kid"], code=1)[1]
    assert "no signing key with kid" in cli("keys", "activate", "NOPE", code=1)[1]
    monkeypatch.delenv("AUTHGATE_REGISTRY_URL")
    assert "signs with it within a second" in cli("keys", "rotate")[0], "embedded: signs at once"
    assert [k["role"] for k in _listed(cli)] == ["verifying", "signing"]


def test_keys_kept_as_files_are_moved_into_the_database(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    old = create_key(tmp_path / "data" / "keys", "ES256")
    listed = _listed(cli)
    assert [k["kid"] for k in listed] == [old.kid] and listed[0]["role"] == "signing"
    assert (tmp_path / "data" / "keys" / "seal.key").stat().st_mode & 0o777 == 0o600


def test_a_host_without_the_seal_key_is_told_what_to_copy(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    cli("keys", "list")
    (tmp_path / "data" / "keys" / "seal.key").unlink()
    err = cli("keys", "list", code=1)[1]
    assert "seal.key" in err and "copy that file" in err and "Traceback" not in err
    seal = tmp_path / "data" / "keys" / "seal.key"
    seal.write_bytes(b"not-a-fernet-key")
    seal.chmod(0o600)
    assert "is not a seal key" in cli("keys", "list", code=1)[1]
    seal.write_bytes(Fernet.generate_key())  # a seal key, not the one the keys were sealed with
    err = cli("keys", "list", code=1)[1]
    assert "cannot be unsealed" in err and "Traceback" not in err
