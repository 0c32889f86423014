"""Several authgate replicas behind nginx round robin, the way the scale-out tests run them: each
replica its own `authgate serve` process with its own data dir, the same signing keys, and the
settings every replica shares (database, bucket or upstream, policies)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.processes import AuthgateServer, Daemon, require

NGINX_CONF = """
daemon off;
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  log_format upstream '$request_method $uri $status $upstream_addr';
  access_log {dir}/access.log upstream;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream authgate {{ {servers} }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    location / {{
      proxy_pass http://authgate;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_read_timeout 300;
    }}
  }}
}}
"""


class Balancer:
    """nginx on `port`, round robin over `upstreams` (`host:port`); a replica that fails is skipped
    for 5 s. Its access log names the replica that answered each request."""

    def __init__(self, workdir: Path, port: int, upstreams: list[str]) -> None:
        require("nginx")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.workdir = workdir
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(
            dir=workdir, port=self.port, servers=" ".join(f"server {u} max_fails=1 fail_timeout=5s;" for u in upstreams),
            user="user root;" if os.geteuid() == 0 else ""))
        self.daemon = Daemon(["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)], workdir / "nginx.out")
        self.url = f"http://127.0.0.1:{self.port}"
        self.daemon.wait_until(lambda: httpx.get(f"{self.url}/healthz").status_code == 200, "nginx")

    def upstreams_of(self, method: str) -> list[str]:
        """The replica that answered each logged request with `method`, in order."""
        lines = (self.workdir / "access.log").read_text().splitlines()
        return [line.split()[3] for line in lines if line.startswith(method + " ")]

    def log_text(self) -> str:
        return (self.workdir / "access.log").read_text()

    def stop(self) -> None:
        self.daemon.stop()


def replica(workdir: Path, settings: Mapping[str, str], env: Mapping[str, str] | None = None,
            keys_from: AuthgateServer | None = None, port: int | None = None) -> AuthgateServer:
    """One `authgate serve` with `settings`, started; with `keys_from`, signing with that replica's
    keys (copied, as an operator copies `keys/` to every replica)."""
    server = AuthgateServer(workdir, port=port, **settings)
    server.env.update(env or {})
    if keys_from is not None:
        server.data.mkdir(mode=0o700)
        shutil.copytree(keys_from.data / "keys", server.data / "keys")
    server._public_url = None  # health checks and direct requests go to the replica itself
    return server.start()


def alive(replicas: list[AuthgateServer]) -> list[AuthgateServer]:
    return [server for server in replicas if server.daemon and server.daemon.process.poll() is None]


def on(server: AuthgateServer | Balancer, location: str) -> str:
    """An upload URL one replica gave, sent to `server` instead (what a balancer does)."""
    return f"{server.url}{httpx.URL(location).raw_path.decode()}"
