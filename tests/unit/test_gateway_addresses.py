"""Clients never see the upstream's address: Location and Link rewritten, other hosts left alone."""

from __future__ import annotations

import httpx
import pytest

from authgate.gateway.client import Upstream
from authgate.gateway.credentials import NoAuth
from authgate.readiness import Readiness
from authgate.settings import Settings


def _upstream(upstream: str = "http://10.0.0.5:5000", public_url: str = "") -> Upstream:
    return Upstream(Settings(upstream=upstream, public_url=public_url), NoAuth(), Readiness())


@pytest.mark.parametrize(("upstream", "public_url", "location", "expected"), [
    ("http://10.0.0.5:5000", "", "http://10.0.0.5:5000/v2/a/b/blobs/uploads/u?_state=x",
     "/v2/a/b/blobs/uploads/u?_state=x"),
    ("http://10.0.0.5:5000", "https://reg.example.test", "http://10.0.0.5:5000/v2/a/b/blobs/sha256:00",
     "https://reg.example.test/v2/a/b/blobs/sha256:00"),
    ("http://10.0.0.5:5000", "https://reg.example.test/", "/v2/a/b/manifests/v1",
     "https://reg.example.test/v2/a/b/manifests/v1"),
    ("http://10.0.0.5:5000/prefix", "", "http://10.0.0.5:5000/prefix/v2/a/b/blobs/uploads/u",
     "/v2/a/b/blobs/uploads/u"),
    # object storage redirect targets are not the upstream: passed as they are
    ("http://10.0.0.5:5000", "", "https://bucket.s3.example.test/blob?X-Amz-Signature=s",
     "https://bucket.s3.example.test/blob?X-Amz-Signature=s"),
])
def test_locations(upstream: str, public_url: str, location: str, expected: str) -> None:
    assert _upstream(upstream, public_url).public_url(location) == expected


@pytest.mark.parametrize(("link", "expected"), [
    ('</v2/_catalog?last=a&n=2>; rel="next"', '</v2/_catalog?last=a&n=2>; rel="next"'),
    ('<http://10.0.0.5:5000/v2/a/tags/list?last=v1&n=1>; rel="next"', '</v2/a/tags/list?last=v1&n=1>; rel="next"'),
])
def test_links(link: str, expected: str) -> None:
    assert _upstream().public_link(link) == expected


def test_only_allowed_headers_pass() -> None:
    response = httpx.Response(201, headers={
        "Location": "http://10.0.0.5:5000/v2/a/b/blobs/sha256:00", "Docker-Content-Digest": "sha256:00",
        "Server": "secret-internal-build", "Set-Cookie": "x=y", "X-Upstream-Node": "10.0.0.5",
        "Docker-Upload-UUID": "u", "Range": "0-9", "OCI-Subject": "sha256:11",
    })
    headers = _upstream().response_headers(response)
    assert headers == {
        "location": "/v2/a/b/blobs/sha256:00", "docker-content-digest": "sha256:00",
        "docker-upload-uuid": "u", "range": "0-9", "oci-subject": "sha256:11",
        "docker-distribution-api-version": "registry/2.0",
    }


@pytest.mark.parametrize(("upstream", "logged"), [
    ("http://10.0.0.5:5000", "http://10.0.0.5:5000"),
    ("https://gw:s3cret@reg.internal/prefix", "https://reg.internal/prefix"),  # never the credentials
    ("http://[fd00::5]:5000", "http://[fd00::5]:5000"),
])
def test_the_start_up_log_names_the_upstream(upstream: str, logged: str) -> None:
    assert _upstream(upstream).describe() == logged
