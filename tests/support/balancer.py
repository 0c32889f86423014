"""Several authgate replicas behind nginx round robin, the way the scale-out tests run them: each
replica its own `authgate serve` process with its own data dir, the same signing keys, and the
settings every replica shares (database, bucket or upstream, policies)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import jwt

from tests.support.processes import AuthgateServer, Daemon, Dockerd, require, wait_for

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


#: The one user the balancer tests push as, and the policy they run under (each user's own namespace).
PASSWORD = "alice-secret-pw"
AUTH = ("alice", PASSWORD)
OWN_NAMESPACE = """\
rules:
  - name: own-namespace
    subjects: ["*"]
    repositories: ["${user}/**"]
    allow: ["*"]
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


def docker_round_trip(balancer: Balancer, dockerd: Dockerd, repository: str, message: str, password: str) -> str:
    """`docker login`, push of a four-layer busybox image, `rmi`, pull and run, all through the
    balancer as alice; what the container printed."""
    registry = f"127.0.0.1:{balancer.port}"
    dockerd.run("login", "-u", "alice", "--password-stdin", registry, input=password)
    image = f"{registry}/{repository}"
    dockerd.build_busybox(image, message=message, extra_layers=3)
    dockerd.run("push", image)
    dockerd.run("rmi", image)
    dockerd.run("pull", image)
    return dockerd.run("run", "--rm", "--network", "none", image).stdout.strip()


def _inbound(port: int) -> set[str]:
    """Remote `ip:port` of the established TCP connections to 127.0.0.1:`port` on this host."""
    found = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:
                found.add(fields[2])
    return found


def busy_replica(replicas: list[AuthgateServer], timeout: float = 60) -> AuthgateServer:
    """The replica that holds one connection from the balancer across three looks 0.1 s apart: one
    in the middle of a long request (nginx opens a connection per request, so short ones come and
    go between looks)."""
    seen: list[set[tuple[int, str]]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = [*seen[-2:], {(n, peer) for n, server in enumerate(replicas) for peer in _inbound(server.port)}]
        lasting = set.intersection(*seen) if len(seen) == 3 else set()
        if lasting:
            return replicas[min(lasting)[0]]
        time.sleep(0.1)
    raise AssertionError(f"no replica was busy with a long request within {timeout} s")


def push_while_a_replica_dies(balancer: Balancer, replicas: list[AuthgateServer], dockerd: Dockerd, workdir: Path,
                              repository: str, password: str
                              ) -> tuple[subprocess.CompletedProcess[str], Callable[[], bool]]:
    """`docker push` of a 48 MiB layer through the balancer, and SIGKILL of the replica receiving
    it in the middle. Returns the push's result and a check that pulls the image back and compares
    the layer byte for byte."""
    registry = f"127.0.0.1:{balancer.port}"
    dockerd.run("login", "-u", "alice", "--password-stdin", registry, input=password)
    context = workdir / "context"
    context.mkdir()
    payload = os.urandom(48 * 1024 * 1024)
    (context / "payload.bin").write_bytes(payload)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY payload.bin /payload.bin\n")
    image = f"{registry}/{repository}"
    dockerd.run("build", "-q", "-t", image, str(context))
    result: list[subprocess.CompletedProcess[str]] = []
    pushing = threading.Thread(target=lambda: result.append(dockerd.run("push", image, check=False)))
    pushing.start()
    wait_for(lambda: f"POST /v2/{repository}/blobs/uploads/" in balancer.log_text(), "the push to start", 60)
    victim = busy_replica(replicas)
    assert victim.daemon is not None
    victim.daemon.kill()
    pushing.join(300)
    assert result, "docker push did not finish within 300 s"

    def pulled_back_whole() -> bool:
        dockerd.run("rmi", image)
        dockerd.run("pull", image)
        exported = dockerd.run("create", image, "/payload.bin").stdout.strip()
        try:
            copied = workdir / "copied.bin"
            dockerd.run("cp", f"{exported}:/payload.bin", str(copied))
            return hashlib.sha256(copied.read_bytes()).digest() == hashlib.sha256(payload).digest()
        finally:
            dockerd.run("rm", exported, check=False)

    return result[0], pulled_back_whole


def audit_chain_verifies(replicas: list[AuthgateServer]) -> None:
    """`authgate audit verify` passes on the one chain every replica appended to."""
    verify = replicas[0].cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def policy_change_reaches_every_replica(replicas: list[AuthgateServer], password: str) -> None:
    """A rule added to the shared policy directory grants user bob pull on every replica (bounded wait)."""
    running = alive(replicas)
    policies = Path(running[0].env["AUTHGATE_POLICIES"])

    def granted(server: AuthgateServer) -> list[str]:
        response = httpx.get(f"{server.url}/token", auth=("bob", password),
                             params={"service": "authgate", "scope": "repository:alice/balanced:pull"})
        claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
        return list(claims["access"][0]["actions"]) if claims["access"] else []

    assert [granted(server) for server in running] == [[]] * len(running)
    (policies / "bob.yaml").write_text(
        'rules:\n  - name: bob-reads-alice\n    subjects: ["user:bob"]\n    repositories: ["alice/**"]\n'
        '    allow: [pull]\n')
    for server in running:
        wait_for(lambda: granted(server) == ["pull"], f"the policy change on {server.url}", 10)


def user_disable_reaches_every_replica(replicas: list[AuthgateServer], password: str) -> None:
    """`user disable bob` on one replica refuses bob on every replica, though each had his password cached."""
    running = alive(replicas)

    def login(server: AuthgateServer) -> int:
        return httpx.get(f"{server.url}/token", auth=("bob", password), params={"service": "authgate"}).status_code

    assert [login(server) for server in running] == [200] * len(running)  # every replica has bob's password cached
    running[0].cli("user", "disable", "bob")
    assert [login(server) for server in running] == [401] * len(running)
    running[-1].cli("user", "enable", "bob")
    assert [login(server) for server in running] == [200] * len(running)


def chunked_upload_over_three_replicas(balancer: Balancer, auth: tuple[str, str]) -> None:
    """POST, three PATCHes each on a new connection (so on the next replica) and the PUT through the
    balancer: the blob pulled back is the one uploaded."""
    chunks = [bytes([n]) * (5 * 1024 * 1024 + 333 * n) for n in range(1, 4)]
    whole = b"".join(chunks)
    digest = f"sha256:{hashlib.sha256(whole).hexdigest()}"
    before = len(balancer.upstreams_of("PATCH"))
    location = httpx.post(f"{balancer.url}/v2/alice/spread/blobs/uploads/", auth=auth).headers["location"]
    offset = 0
    for chunk in chunks:  # a new connection each: nginx hands each to the next replica
        response = httpx.patch(on(balancer, location), content=chunk, auth=auth, timeout=60,
                               headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert response.status_code == 202, response.text
        offset += len(chunk)
        location = response.headers["location"]
    # nginx logs a request after answering it: wait for the three lines, then look at them.
    wait_for(lambda: len(balancer.upstreams_of("PATCH")) >= before + 3, "nginx's log lines", 10)
    assert len(set(balancer.upstreams_of("PATCH")[before:])) == 3
    done = httpx.put(on(balancer, location), params={"digest": digest}, auth=auth, timeout=60)
    assert done.status_code == 201, done.text
    pulled = httpx.get(f"{balancer.url}/v2/alice/spread/blobs/{digest}", auth=auth, timeout=60)
    assert hashlib.sha256(pulled.content).hexdigest() == digest[7:]
