import json

import pytest

from authgate.errors import ErrorCode, RegistryError, render_error


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_renders_in_the_oci_format(code: ErrorCode) -> None:
    response = render_error(RegistryError(code, headers={"X-Test": "1"}))
    assert response.status_code == code.status
    assert 400 <= response.status_code < 600
    body = json.loads(bytes(response.body))
    assert body == {"errors": [{"code": code.name, "message": code.default_message, "detail": None}]}
    assert response.headers["x-test"] == "1"
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_head_has_no_body_but_keeps_length() -> None:
    response = render_error(RegistryError(ErrorCode.BLOB_UNKNOWN), head=True)
    assert response.body == b""
    assert int(response.headers["content-length"]) > 0
