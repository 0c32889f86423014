"""HTTPS for authgate: a private CA and server certificate in the data dir, so another host's docker
trusts authgate with one copied file instead of `insecure-registries`."""

from authgate.tls.certs import HostError, Issued, issue_ca, issue_server, parse_host
from authgate.tls.serving import with_data_dir_tls
from authgate.tls.store import TlsFiles, TlsStoreError, init_tls, load_tls, renew_tls

__all__ = [
    "HostError",
    "Issued",
    "TlsFiles",
    "TlsStoreError",
    "init_tls",
    "issue_ca",
    "issue_server",
    "load_tls",
    "parse_host",
    "renew_tls",
    "with_data_dir_tls",
]
