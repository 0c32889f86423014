from pathlib import Path

from starlette.testclient import TestClient

from authgate.app import create_app
from authgate.settings import load_settings


def test_metrics_count_requests_by_route_kind_not_repository(tmp_path: Path) -> None:
    app = create_app(load_settings(environ={"AUTHGATE_DATA": str(tmp_path)}))
    with TestClient(app) as client:
        client.get("/healthz")
        client.get("/v2/alice/secret-project/manifests/latest")
        body = client.get("/metrics").text
    assert 'authgate_http_requests_total{method="GET",route="probe",status="200"} 1.0' in body
    assert 'route="manifest"' in body
    assert "secret-project" not in body


def test_made_up_methods_share_one_label(tmp_path: Path) -> None:
    # Every distinct label value is a new series held forever: a client inventing methods
    # (uvicorn passes any token through) must not grow the process's memory without bound.
    app = create_app(load_settings(environ={"AUTHGATE_DATA": str(tmp_path)}))
    with TestClient(app) as client:
        for i in range(5):
            assert client.request(f"BOGUS{i}", "/v2/").status_code == 405
        body = client.get("/metrics").text
    assert "BOGUS" not in body
    assert 'authgate_http_requests_total{method="other",route="base",status="405"} 5.0' in body


def test_metrics_and_openapi_can_be_for_admins_only(tmp_path: Path) -> None:
    import asyncio

    from authgate.auth import accounts
    from authgate.auth.services import auth_of
    from tests.api.token_support import basic

    app = create_app(load_settings(environ={"AUTHGATE_DATA": str(tmp_path), "AUTHGATE_METRICS_ACCESS": "admin",
                                            "AUTHGATE_BCRYPT_ROUNDS": "4"}))
    with TestClient(app) as client:
        resources = app.state.resources
        verifier = auth_of(resources).verifier
        for name, admin in (("root", True), ("alice", False)):
            asyncio.run(accounts.create_user(resources.db, name, verifier.hash(f"{name}-pw"), admin=admin))
        for path in ("/metrics", "/admin/openapi.json"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers=basic("alice", "alice-pw")).status_code == 403
            assert client.get(path, headers=basic("root", "root-pw")).status_code == 200
