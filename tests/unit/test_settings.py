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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTHGATE_PORT": "abc"}, "AUTHGATE_PORT: invalid value for port: must be a whole number, got 'abc'"),
        ({"AUTHGATE_TOKEN_TTL": "5 minutes"}, "token_ttl: must be a number of seconds or an age such as 30m"),
        ({"AUTHGATE_MAX_BLOB_SIZE": "lots"}, "max_blob_size: must be a number of bytes or a size such as 512M"),
        ({"AUTHGATE_UPSTREAM_TIMEOUT": "soon"}, "upstream_timeout: must be a number, got 'soon'"),
    ],
)
def test_a_value_of_the_wrong_kind_says_what_is_accepted(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ=env)
    assert message in str(raised.value)
    assert "invalid literal" not in str(raised.value), "Python's wording means nothing to an operator"


def test_a_misspelled_environment_variable_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="authgate.settings"):
        settings = load_settings(environ={"AUTHGATE_PROT": "6000", "AUTHGATE_CONFIG_DIR": "x", "AUTHGATE_PORT": "5001",
                                          "AUTHGATE_TEST_BASE_CACHE": "/var/cache"})
    assert settings.port == 5001
    warnings = [r.getMessage() for r in caplog.records]
    assert "ignoring AUTHGATE_PROT: not an authgate setting; did you mean AUTHGATE_PORT?" in warnings
    assert any(w.startswith("ignoring AUTHGATE_CONFIG_DIR") for w in warnings)
    assert len(warnings) == 2, "known names, AUTHGATE_CONFIG and the tests' own variables are not warned"
