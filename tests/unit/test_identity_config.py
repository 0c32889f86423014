"""The identity file: a table of bad configurations, each refused with the setting it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authgate.identity.base import IdentityConfigError
from authgate.identity.config import LdapConfig, load_identity, parse_identity

GOOD: dict[str, Any] = {
    "type": "ldap", "name": "corp", "url": "ldap://127.0.0.1:389", "bind_dn": "cn=svc,dc=x", "bind_password": "pw",
    "user_base": "ou=people,dc=x",
}


def _with(**changes: Any) -> dict[str, Any]:
    source = {**GOOD, **changes}
    return {"sources": ["local", {k: v for k, v in source.items() if v is not None}]}


def test_no_file_means_the_local_database_only() -> None:
    assert load_identity(None) == ["local"]


def test_a_good_ldap_source_parses_with_defaults() -> None:
    sources = parse_identity(_with(cache_ttl="5m", teams={"Backend Devs": "backend"}))
    assert sources[0] == "local"
    ldap = sources[1]
    assert isinstance(ldap, LdapConfig)
    assert (ldap.cache_ttl, ldap.teams, ldap.search_then_bind) == (300, (("Backend Devs", "backend"),), True)
    assert "pw" not in repr(ldap), "the bind password never prints"


@pytest.mark.parametrize(("changes", "setting"), [
    ({"url": "http://x"}, "corp.url"),
    ({"url": None}, "corp.url"),
    ({"bind_password": None}, "corp.bind_password"),
    ({"bind_dn": None}, "corp.bind_dn"),
    ({"user_base": None}, "corp.user_base"),
    ({"bind_dn": None, "user_dn_template": "uid=x,dc=x"}, "corp.user_dn_template"),
    ({"user_filter": "uid={username}"}, "corp.user_filter"),
    ({"user_filter": "(uid=alice)"}, "corp.user_filter"),
    ({"group_filter": "(member=x)"}, "corp.group_filter"),
    ({"user_filter": "(&(uid={username})(o={org}))"}, "corp.user_filter"),
    ({"nested_depth": 11}, "corp.nested_depth"),
    ({"teams": {"Backend": "Not A Team"}}, "corp.teams.Backend"),
    ({"unmapped_groups": "maybe"}, "corp.unmapped_groups"),
    ({"url": "ldaps://x", "start_tls": True}, "corp.start_tls"),
    ({"ca_file": "/nonexistent/ca.pem"}, "corp.ca_file"),
    ({"timeout": 0}, "corp.timeout"),
    ({"cache_ttl": "soon"}, "corp.cache_ttl"),
    ({"bindpw": "x"}, "bindpw"),
    ({"name": "Local"}, "name"),
])
def test_bad_settings_are_refused_naming_the_setting(changes: dict[str, Any], setting: str) -> None:
    with pytest.raises(IdentityConfigError, match=setting.replace(".", r"\.")):
        parse_identity(_with(**changes))


def test_local_must_come_first_and_names_are_unique() -> None:
    with pytest.raises(IdentityConfigError, match="local must be the first"):
        parse_identity({"sources": [GOOD, "local"]})
    with pytest.raises(IdentityConfigError, match="two sources are named"):
        parse_identity({"sources": [GOOD, GOOD]})
    with pytest.raises(IdentityConfigError, match="sources"):
        parse_identity({"source": ["local"]})


def test_the_bind_password_can_come_from_a_file_or_the_environment(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    (tmp_path / "identity.yaml").write_text(
        "sources:\n  - local\n  - {type: ldap, name: corp, url: 'ldap://h', bind_dn: 'cn=s', user_base: 'dc=x', "
        "bind_password_file: pw}\n")
    ldap = load_identity(tmp_path / "identity.yaml")[1]
    assert isinstance(ldap, LdapConfig) and ldap.bind_password == "from-file", "relative to the identity file"
    monkeypatch.setenv("AUTHGATE_IDENTITY_CORP_BIND_PASSWORD", "from-env")
    ldap = load_identity(tmp_path / "identity.yaml")[1]
    assert isinstance(ldap, LdapConfig) and ldap.bind_password == "from-env"


@pytest.mark.parametrize(("source", "setting"), [
    ({"type": "oidc", "name": "sso", "issuer": "https://idp.example.com"}, "sso.client_id"),
    ({"type": "oidc", "name": "sso", "issuer": "http://idp.example.com", "client_id": "a"}, "sso.issuer"),
    ({"type": "oidc", "name": "sso", "issuer": "https://idp.example.com", "client_id": "a", "scopes": ["groups"]},
     "sso.scopes"),
    ({"type": "oidc_workload", "name": "gh", "issuer": "https://t.example.com"}, "gh.audience"),
    ({"type": "oidc_workload", "name": "gh", "issuer": "https://t.example.com", "audience": "r",
      "algorithms": ["HS256"]}, "gh.algorithms"),
    ({"type": "oidc_workload", "name": "gh", "issuer": "https://t.example.com", "audience": "r", "aud": "x"},
     "gh.aud"),
    ({"type": "saml"}, "sources[1].type"),
    # The checks every kind of source shares (identity/config_checks.py), for people sign-in too:
    ({"type": "oidc", "name": 5, "issuer": "https://idp.example.com", "client_id": "a"}, "sources[1].name"),
    ({"type": "oidc", "name": "sso", "issuer": "https://idp.example.com", "client_id": "a", "timeout": 0},
     "sso.timeout"),
    ({"type": "oidc", "name": "sso", "issuer": "https://idp.example.com", "client_id": "a", "ca_file": "nope.pem"},
     "sso.ca_file"),
    ({"type": "oidc", "name": "sso", "issuer": "https://idp.example.com", "client_id": "a", "tiemout": 5},
     "sso.tiemout"),
])
def test_bad_openid_sources_are_refused_naming_the_setting(source: dict[str, Any], setting: str) -> None:
    with pytest.raises(IdentityConfigError, match=setting.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        parse_identity({"sources": ["local", source]})
