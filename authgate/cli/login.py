"""`authgate login --oidc REGISTRY`: sign in with the OpenID provider on any machine (device grant)
and store the authgate refresh token as docker's identity token for REGISTRY."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from authgate.cli.common import fail


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "login", help="sign in with your OpenID provider (prints a URL and a code) and set up docker login")
    parser.add_argument("registry", help="authgate's URL, e.g. https://registry.example.com")
    parser.add_argument("--oidc", action="store_true", required=True,
                        help="use the OpenID device login (the only kind for now; say it, so scripts stay explicit)")
    parser.add_argument("--source", default="", help="the identity source's name when several are configured")
    parser.add_argument("--docker-config", type=Path, metavar="DIR",
                        help="docker's config directory (default: $DOCKER_CONFIG, else ~/.docker)")
    parser.add_argument("--print-token", action="store_true",
                        help="print the refresh token instead of writing docker's config")
    parser.add_argument("--cacert", type=Path, help="CA certificate for an authgate with a private CA")
    parser.set_defaults(handler=_login)


def _docker_config(args: argparse.Namespace) -> Path:
    directory: Path = args.docker_config or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    return directory / "config.json"


def store_identity_token(config_file: Path, registry: str, username: str, refresh_token: str) -> None:
    """Docker's own format (cli/config/configfile): `auth` is base64 of `user:` with no password, and
    `identitytoken` is what the daemon trades at POST /token grant_type=refresh_token."""
    config: dict[str, Any] = json.loads(config_file.read_text()) if config_file.exists() else {}
    config.setdefault("auths", {})[registry] = {
        "auth": base64.b64encode(f"{username}:".encode()).decode(), "identitytoken": refresh_token}
    config_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = config_file.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent="\t")
    temporary.replace(config_file)


def _login(args: argparse.Namespace) -> int:
    base = args.registry.rstrip("/")
    if urlsplit(base).scheme not in ("http", "https"):
        base = f"https://{base}"
    verify: bool | str = str(args.cacert) if args.cacert else True
    with httpx.Client(base_url=base, timeout=30, verify=verify) as client:
        try:
            response = client.post("/auth/oidc/device", data={"source": args.source})
        except httpx.HTTPError as exc:
            return fail(f"cannot reach {base}: {exc}")
        started = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200:
            return fail(started.get("error_description") or f"{base} answered {response.status_code}")
        url = started.get("verification_uri_complete") or started["verification_uri"]
        print(f"Open {url}\nand confirm the code {started['user_code']} (valid {started.get('expires_in', 600)} s).",
              flush=True)
        interval = max(1, int(started.get("interval", 5)))
        deadline = time.monotonic() + int(started.get("expires_in", 600))
        while time.monotonic() < deadline:
            time.sleep(interval)
            polled = client.post("/auth/oidc/token", data={
                "device_code": started["device_code"], "source": started["source"], "client_id": "authgate-cli"})
            body = polled.json()
            if polled.status_code == 200:
                break
            if body.get("error") == "slow_down":
                interval += 5  # RFC 8628 §3.5
            elif body.get("error") != "authorization_pending":
                return fail(body.get("error_description") or f"sign-in failed ({polled.status_code})")
        else:
            return fail("the code expired before the sign-in finished; run authgate login again")
    teams = ", ".join(body["teams"]) or "none"
    if args.print_token:
        print(body["refresh_token"])
        return 0
    registry = urlsplit(base).netloc
    config_file = _docker_config(args)
    store_identity_token(config_file, registry, body["username"], body["refresh_token"])
    print(f"Signed in as {body['username']} (teams: {teams}); docker now uses an identity token for {registry} "
          f"({config_file}). Revoke it with `authgate token revoke`.", file=sys.stderr)
    return 0
