from pathlib import Path

import pytest

from authgate.settings import SettingsError, load_settings


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "authgate.yml"
    config.write_text("port: 6000\ntoken_ttl: 10m\nservice: from-file\n")
    settings = load_settings(config, environ={"AUTHGATE_SERVICE": "from-env"}, port=7000)
    assert (settings.port, settings.token_ttl, settings.service) == (7000, 600, "from-env")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTHGATE_PORT": "abc"}, "AUTHGATE_PORT"),
        ({"AUTHGATE_PORT": "70000"}, "out of range"),
        ({"AUTHGATE_SIGNING_ALGORITHM": "HS256"}, "ES256"),
        ({"AUTHGATE_TOKEN_TTL": "10"}, "at least 60"),
        ({"AUTHGATE_UPSTREAM": "ftp://x"}, "http"),
        ({"AUTHGATE_TLS_CERT": "/x.pem"}, "together"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=env)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "authgate.yml"
    config.write_text("prot: 5000\n")
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        load_settings(config, environ={})


def test_defaults_match_the_registry_image() -> None:
    settings = load_settings(environ={})
    assert settings.port == 5000
    assert settings.realm == "http://localhost:5000/token"


def test_secrets_never_show_in_repr() -> None:
    # A Settings object that reaches a log line, a traceback or a debugger shows no secret.
    settings = load_settings(environ={"AUTHGATE_NOTIFICATION_SECRET": "notify-s3cret", "AUTHGATE_WEBHOOK_SECRET":
                                      "hook-s3cret", "AUTHGATE_UPSTREAM_PASSWORD": "up-s3cret",
                                      "AUTHGATE_DATABASE_URL": "postgresql+psycopg://authgate:db-s3cret@db/authgate"})
    assert settings.notification_secret == "notify-s3cret"
    assert "s3cret" not in repr(settings)
