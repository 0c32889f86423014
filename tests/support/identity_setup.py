"""What the identity-source tests (LDAP, OpenID people, CI workloads; in-process and through docker)
set up alike: the policy directory, the identity file, `authgate serve` configured with both, and
docker login/push as those tests drive them. Each test keeps its own policy text and sources, so a
reader still sees what is being granted."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.processes import AuthgateServer, Dockerd, free_port


def write_policies(workdir: Path, policy: str) -> Path:
    """A policy directory under workdir holding `registry.yaml`; returns the directory."""
    directory = workdir / "policies"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "registry.yaml").write_text(policy)
    return directory


def write_identity(path: Path, *sources: dict[str, object]) -> Path:
    """An identity file: local accounts first, then the given sources; returns the path."""
    path.write_text(json.dumps({"sources": ["local", *sources]}))
    return path


def oidc_people(issuer: str, **extra: object) -> dict[str, object]:
    """A `type: oidc` source named sso for the test provider's device client, re-checked on every refresh."""
    return {"type": "oidc", "name": "sso", "issuer": issuer, "client_id": "authgate", "algorithms": ["ES256"],
            "recheck_interval": 0, **extra}


def serve(workdir: Path, policies: Path, identity: Path, **settings: str) -> AuthgateServer:
    """`authgate serve` on a free loopback port with these policies and identity file, started."""
    port = free_port()
    return AuthgateServer(workdir, port=port, public_url=f"http://127.0.0.1:{port}", policies=str(policies),
                          identity=str(identity), **settings).start()


def docker_login(dockerd: Dockerd, server: AuthgateServer, user: str, secret: str) -> tuple[bool, str]:
    """`docker login` after a logout (so nothing stored is reused): (succeeded, what docker printed)."""
    dockerd.run("logout", server.registry, check=False)
    result = dockerd.run("login", server.registry, "-u", user, "--password-stdin", input=secret, check=False)
    return result.returncode == 0, result.stdout + result.stderr


def docker_push(dockerd: Dockerd, image: str) -> tuple[bool, str]:
    """Build a one-layer image named image and push it: (succeeded, what docker printed)."""
    dockerd.build_busybox(image, message=image)
    result = dockerd.run("push", image, check=False)
    return result.returncode == 0, result.stdout + result.stderr
