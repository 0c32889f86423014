"""What `authgate serve` checks and says before it listens, beyond settings validation: a data
directory this user can write, a certificate that fits the address it listens on, and the mode
it runs in. Each problem is one line naming the fix, not a traceback or a silent misbehaviour."""

from __future__ import annotations

import logging
import socket

from authgate.cli.datadir import check_writable, localhost_only_realm, remember_served_url
from authgate.settings import Settings, SettingsError
from authgate.tls.listen_check import check_listening
from authgate.tls.serving import with_data_dir_tls

log = logging.getLogger("authgate")


def prepare_to_serve(configured: Settings) -> Settings:
    """The settings to serve with (`tls init`'s certificate picked up from the data directory), after
    raising `DataDirError`/`SettingsError` for a start that cannot work and warning about one that may not."""
    check_writable(configured)
    serving = with_data_dir_tls(configured)
    if serving.policy_source == "database":
        if serving.policies is not None:
            log.warning("policies: %s is not read by this server (policy_source: database): it decides with the newest "
                        "`authgate policy push`; `authgate policy push %s` makes those files live",
                        serving.policies, serving.policies)
    elif serving.policies is not None and not serving.policies.is_dir():
        raise SettingsError(f"policies: {serving.policies} is not a directory (from AUTHGATE_POLICIES or the config "
                            "file): fix the path, or unset it for the built-in policy (each user owns NAME/…)")
    checked = check_listening(serving, from_tls_init=configured.tls_cert is None and serving.tls_cert is not None)
    if checked.refusal:
        raise SettingsError(checked.refusal)
    serving.data.mkdir(mode=0o700, parents=True, exist_ok=True)  # private images, hashes, keys: owner only
    for warning in checked.warnings:
        log.warning(warning)
    if serving.token_server_only:
        log.info("token-server mode: issuing tokens at %s for the registry at %s; /v2/ is not served here",
                 serving.realm, serving.registry_url)
    remember_served_url(serving)
    if localhost_only_realm(serving):
        log.warning("authgate listens on every address (%s) but has no public_url: the token realm %s reaches this "
                    "machine only, so docker elsewhere cannot log in. Set public_url to the address clients use "
                    "(e.g. AUTHGATE_PUBLIC_URL=%s://%s:%d)", serving.host or "*", serving.realm,
                    serving.url.split("://", 1)[0], socket.gethostname(), serving.port)
    return serving
