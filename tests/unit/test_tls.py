"""`authgate tls`: SANs, key modes, lifetimes, renewal, and what `serve` picks up from the data dir."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from authgate.cli.main import main
from authgate.settings import Settings, SettingsError
from authgate.tls.certs import HostError, parse_host, sans_of
from authgate.tls.serving import expiry_warning, with_data_dir_tls
from authgate.tls.store import TlsFiles, TlsStoreError, init_tls, load_tls, renew_tls


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.20.30.1", x509.IPAddress(ipaddress.ip_address("10.20.30.1"))),
        ("::1", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("[fd00::5]", x509.IPAddress(ipaddress.ip_address("fd00::5"))),
        ("Registry.Example.COM", x509.DNSName("registry.example.com")),
        ("registry.example.com.", x509.DNSName("registry.example.com")),
        ("localhost", x509.DNSName("localhost")),
        ("*.corp.example", x509.DNSName("*.corp.example")),
    ],
)
def test_hosts_parse_to_ip_or_dns_names(raw: str, expected: x509.GeneralName) -> None:
    assert parse_host(raw) == expected


@pytest.mark.parametrize("raw", ["", "bad_host", "-lead.example", "a..b", "*.com", "x" * 64 + ".example",
                                 "http://registry.example", "registry.example:5000"])
def test_bad_hosts_are_refused(raw: str) -> None:
    with pytest.raises(HostError):
        parse_host(raw)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_issues_a_server_certificate_for_every_host_signed_by_a_new_ca(tmp_path: Path) -> None:
    state, created = init_tls(tmp_path, ["registry.example", "10.99.0.1", "::1"])
    files = TlsFiles.in_data(tmp_path)
    assert created
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    assert sans_of(server) == [
        x509.DNSName("registry.example"),
        x509.IPAddress(ipaddress.ip_address("10.99.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    server.verify_directly_issued_by(ca)
    assert _mode(files.ca_key) == 0o600 and _mode(files.server_key) == 0o600
    assert _mode(files.ca_cert) == 0o644 and _mode(files.server_cert) == 0o644
    for cert in (server, ca):
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    server_days = (server.not_valid_after_utc - server.not_valid_before_utc).days
    ca_days = (ca.not_valid_after_utc - ca.not_valid_before_utc).days
    assert 360 <= server_days <= 366 and 3640 <= ca_days <= 3660
    assert state.hosts == sans_of(server)


def test_init_again_reuses_the_ca_so_clients_keep_trusting(tmp_path: Path) -> None:
    init_tls(tmp_path, ["registry.example"])
    files = TlsFiles.in_data(tmp_path)
    ca_before = files.ca_cert.read_bytes()
    _, created = init_tls(tmp_path, ["registry.example", "10.99.0.1"])
    assert not created and files.ca_cert.read_bytes() == ca_before
    assert len(load_tls(tmp_path).hosts) == 2
    _, created = init_tls(tmp_path, ["registry.example"], new_ca=True)
    assert created and files.ca_cert.read_bytes() != ca_before


def test_init_without_a_valid_host_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(HostError):
        init_tls(tmp_path, ["registry.example", "not a host"])
    assert not (tmp_path / "tls").exists() or not any((tmp_path / "tls").iterdir())


def test_renew_is_a_no_op_until_due_then_reissues_from_the_same_ca_for_the_same_hosts(tmp_path: Path) -> None:
    first, _ = init_tls(tmp_path, ["registry.example", "10.99.0.1"])
    old = first.server.certificate
    not_due = renew_tls(tmp_path)
    assert not not_due.renewed
    assert not_due.state.server.certificate.serial_number == old.serial_number

    due = renew_tls(tmp_path, now=old.not_valid_after_utc - dt.timedelta(days=10))
    new = due.state.server.certificate
    assert due.renewed and due.previous_not_after == old.not_valid_after_utc
    assert new.serial_number != old.serial_number
    assert sans_of(new) == sans_of(old)
    assert new.not_valid_after_utc > old.not_valid_after_utc
    new.verify_directly_issued_by(first.ca.certificate)
    assert _mode(TlsFiles.in_data(tmp_path).server_key) == 0o600
    assert load_tls(tmp_path).server.certificate == new

    forced = renew_tls(tmp_path, force=True)
    assert forced.renewed and forced.state.server.certificate.serial_number != new.serial_number


def test_renew_without_init_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(TlsStoreError, match="tls init"):
        renew_tls(tmp_path)


def test_a_key_that_does_not_match_its_certificate_is_reported(tmp_path: Path) -> None:
    init_tls(tmp_path, ["registry.example"])
    files = TlsFiles.in_data(tmp_path)
    files.server_key.write_bytes(files.ca_key.read_bytes())
    with pytest.raises(TlsStoreError, match="does not match"):
        load_tls(tmp_path)


@pytest.mark.parametrize(
    ("host", "public_url", "expected_url"),
    [
        ("0.0.0.0", "", "https://registry.example:5000"),
        ("10.99.0.1", "", "https://10.99.0.1:5000"),
        ("10.99.0.2", "", "https://registry.example:5000"),
        ("0.0.0.0", "https://registry.example", "https://registry.example"),
    ],
)
def test_serve_uses_the_data_dir_certificate_and_an_https_realm(
    tmp_path: Path, host: str, public_url: str, expected_url: str
) -> None:
    init_tls(tmp_path, ["registry.example", "10.99.0.1"])
    settings = with_data_dir_tls(Settings(data=tmp_path, host=host, public_url=public_url))
    assert settings.tls_cert == tmp_path / "tls" / "server.crt"
    assert settings.tls_key == tmp_path / "tls" / "server.key"
    assert settings.url == expected_url
    assert settings.realm == f"{expected_url}/token"


def test_configured_certificates_win_and_no_files_means_plain_http(tmp_path: Path) -> None:
    plain = Settings(data=tmp_path)
    assert with_data_dir_tls(plain) == plain
    init_tls(tmp_path, ["registry.example"])
    configured = Settings(data=tmp_path, tls_cert=Path("/etc/ssl/own.crt"), tls_key=Path("/etc/ssl/own.key"))
    assert with_data_dir_tls(configured) == configured


def test_an_unreadable_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    init_tls(tmp_path, ["registry.example"])
    (tmp_path / "tls" / "server.crt").write_text("garbage")
    with pytest.raises(SettingsError, match="tls renew"):
        with_data_dir_tls(Settings(data=tmp_path))


def test_expiry_warning_names_the_fix_only_when_due(tmp_path: Path) -> None:
    state, _ = init_tls(tmp_path, ["registry.example"])
    end = state.server.certificate.not_valid_after_utc
    assert expiry_warning(state.files.server_cert, now=end - dt.timedelta(days=100)) is None
    soon = expiry_warning(state.files.server_cert, now=end - dt.timedelta(days=3))
    assert soon is not None and "expires" in soon and "authgate tls renew" in soon
    gone = expiry_warning(state.files.server_cert, now=end + dt.timedelta(days=1))
    assert gone is not None and "expired" in gone


def test_cli_init_prints_the_trust_steps_for_each_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHGATE_DATA", str(tmp_path))
    monkeypatch.setenv("AUTHGATE_PORT", "5443")
    assert main(["tls", "init", "--host", "registry.example", "--host", "10.99.0.1"]) == 0
    out = capsys.readouterr().out
    for line in [
        "/etc/docker/certs.d/registry.example:5443/ca.crt",
        "/etc/docker/certs.d/10.99.0.1:5443/ca.crt",
        "/etc/containers/certs.d/registry.example:5443/ca.crt",
        'ca = "/etc/containerd/certs.d/registry.example:5443/ca.crt"',
        "curl --cacert ca.crt https://registry.example:5443/v2/",
        str((tmp_path / "tls" / "ca.crt").resolve()),
        "`authgate serve --host 0.0.0.0 --port 5443`",  # restarted on loopback, nobody could use the certificate
    ]:
        assert line in out
    assert main(["tls", "renew"]) == 0
    assert "not due" in capsys.readouterr().out
    assert main(["tls", "renew", "--force"]) == 0
    assert "renewed" in capsys.readouterr().out
    assert main(["tls", "init", "--host", "bad host"]) == 1
    assert "not an IP address or a DNS name" in capsys.readouterr().err
