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


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("token_ttl: -5", "invalid value for token_ttl: must be at least 1 second, got -5"),
    ("refresh_token_ttl: 0", "invalid value for refresh_token_ttl: must be at least 1 second, got 0"),
    ("upload_max_age: -86400", "invalid value for upload_max_age: must be at least 1 second, got -86400"),
    ("s3_redirect_ttl: 0", "invalid value for s3_redirect_ttl: must be at least 1 second"),
    ("password_cache_ttl: -1", "invalid value for password_cache_ttl: must be 0 (off) or a number of seconds"),
    ("token_ttl: 100000000000000000000", "invalid value for token_ttl: must be at most"),
    ("token_ttl: true", "invalid value for token_ttl: must be a number, not true"),
    ("port: yes", "invalid value for port: must be a number, not true"),
    ("max_blob_size: -1", "invalid value for max_blob_size: must be a positive number of bytes"),
    ("max_manifest_size: 0", "invalid value for max_manifest_size: must be a positive number of bytes"),
    ("max_blob_size: -1G", "invalid value for max_blob_size: must be a number of bytes or a size such as 512M"),
    ("max_blob_size: infG", "invalid value for max_blob_size: must be a number of bytes or a size"),
    ("max_blob_size: nan", "invalid value for max_blob_size: must be a number of bytes or a size"),
    ("max_blob_size: 1e9", "invalid value for max_blob_size: must be a number of bytes or a size"),
    ("max_blob_size: 0.0001k", "invalid value for max_blob_size: must be a positive number of bytes, got 0"),
    ("max_blob_size: 99999999999T", "invalid value for max_blob_size: must be at most 9223372036854775807 bytes"),
    ("s3_part_size: 8X", "invalid value for s3_part_size: must be a number of bytes or a size"),
    ("upstream_timeout: .nan", "invalid value for upstream_timeout: must be a finite number"),
    ("upstream_timeout: .inf", "invalid value for upstream_timeout: must be a finite number"),
    ("upstream_timeout: false", "invalid value for upstream_timeout: must be a number, not false"),
])
def test_config_file_numbers_that_mean_nothing_are_refused_naming_the_setting(
        tmp_path: Path, yaml_text: str, message: str) -> None:
    """A YAML number skips the text grammar: negative or zero lengths of time, sizes that are not
    sizes, true/false for a number, NaN and infinity are refused with the file and the setting."""
    config = tmp_path / "authgate.yml"
    config.write_text(yaml_text + "\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(config, environ={})
    assert str(raised.value).startswith(f"{config}: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(("env", "message"), [
    ({"AUTHGATE_MAX_MANIFEST_SIZE": "0"}, "AUTHGATE_MAX_MANIFEST_SIZE: invalid value for max_manifest_size: must be a "
                                          "positive number of bytes"),
    ({"AUTHGATE_REFRESH_TOKEN_TTL": "0d"}, "AUTHGATE_REFRESH_TOKEN_TTL: invalid value for refresh_token_ttl: must be "
                                           "at least 1 second, got 0"),
    ({"AUTHGATE_STORAGE": "s3", "AUTHGATE_S3_BUCKET": "b", "AUTHGATE_S3_REDIRECT": "true",
      "AUTHGATE_S3_REDIRECT_TTL": "8d"}, "s3_redirect_ttl must be at most 7d"),
])
def test_environment_values_that_mean_nothing_are_refused_naming_the_setting(env: dict[str, str],
                                                                             message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ=env)
    assert message in str(raised.value)


def test_sizes_and_lengths_of_time_that_mean_something_are_read(tmp_path: Path) -> None:
    config = tmp_path / "authgate.yml"
    config.write_text("max_blob_size: 64GiB\nmax_manifest_size: 1.5 M\ns3_part_size: 8388608\n"
                      "password_cache_ttl: 0\nupload_max_age: 12h\nupstream_timeout: 30\n")
    settings = load_settings(config, environ={"AUTHGATE_REFRESH_TOKEN_TTL": "30d"})
    assert settings.max_blob_size == 64 * 1024**3
    assert settings.max_manifest_size == 1024**2 + 512 * 1024
    assert (settings.s3_part_size, settings.password_cache_ttl, settings.upload_max_age) == (8 * 1024**2, 0, 43200)
    assert (settings.upstream_timeout, settings.refresh_token_ttl) == (30.0, 30 * 86400)
