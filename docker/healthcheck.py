"""Container health check: GET /healthz on this container's port, over HTTPS when `authgate tls init`
(or a configured certificate) made authgate serve HTTPS. The slim image has no curl.

Loopback only, so the certificate (issued for the public names) is not verified here.
"""

import os
import ssl
import sys
import urllib.request

port = os.environ.get("AUTHGATE_PORT", "5000")
data = os.environ.get("AUTHGATE_DATA", "/data")
https = bool(os.environ.get("AUTHGATE_TLS_CERT")) or os.path.exists(os.path.join(data, "tls", "server.crt"))
url = f"{'https' if https else 'http'}://127.0.0.1:{port}/healthz"
try:
    with urllib.request.urlopen(url, timeout=4, context=ssl._create_unverified_context() if https else None) as r:
        print(url, r.status)
        sys.exit(0 if r.status == 200 else 1)
except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"; say why in `docker inspect`
    print(f"{url}: {exc}", file=sys.stderr)
    sys.exit(1)
