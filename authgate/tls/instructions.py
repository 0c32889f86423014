"""The steps that make a client trust authgate's CA, printed by `tls init` with the real host and port."""

from __future__ import annotations

import ipaddress
from pathlib import Path


def _authority(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def trust_steps(ca_cert: Path, hosts: list[str], port: int) -> str:
    """Shell steps for docker, podman/skopeo/buildah, containerd and curl, for every host."""
    ca = ca_cert.resolve()
    first = _authority(hosts[0], port)
    lines = [
        f"Copy {ca} to each client machine (it is public: only the keys are secret), then:",
        "",
        "  docker (no restart needed):",
    ]
    for host in hosts:
        auth = _authority(host, port)
        lines.append(f"    sudo mkdir -p /etc/docker/certs.d/{auth} && sudo cp ca.crt /etc/docker/certs.d/{auth}/ca.crt")
    lines += ["", "  podman, skopeo, buildah:"]
    for host in hosts:
        auth = _authority(host, port)
        lines.append(
            f"    sudo mkdir -p /etc/containers/certs.d/{auth} && sudo cp ca.crt /etc/containers/certs.d/{auth}/ca.crt"
        )
    lines += [
        "",
        f"  containerd (CRI config_path = \"/etc/containerd/certs.d\"; ctr: --hosts-dir /etc/containerd/certs.d):",
        f"    sudo mkdir -p /etc/containerd/certs.d/{first} && sudo cp ca.crt /etc/containerd/certs.d/{first}/ca.crt",
        f"    sudo tee /etc/containerd/certs.d/{first}/hosts.toml <<'TOML'",
        f'server = "https://{first}"',
        "",
        f'[host."https://{first}"]',
        f'  ca = "/etc/containerd/certs.d/{first}/ca.crt"',
        "TOML",
        "",
        "  curl:",
        f"    curl --cacert ca.crt https://{first}/v2/",
        "",
        f"Then: docker login {first}",
    ]
    return "\n".join(lines)
