from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_schema_is_openapi_3_and_lists_the_endpoints(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/health" in schema["paths"]
    assert "/api/v1/events" in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert {"after_seq", "cursor", "limit"} <= params


def test_swagger_ui_loads_its_assets_from_this_server(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert not re.search(r'(?:src|href)="https?://', html), "an asset would come from a CDN"
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset


def test_schema_generates_without_warnings_and_validates(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    text = (tmp_path / "schema.yaml").read_text()
    assert "/api/v1/auth/siwe/verify" in text
    assert "jwtAuth" in text
