from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from accounts.apis import SIWE_EXAMPLE, SiweInputSerializer
from marqetfi.core.api_tags import TAG_NAMES
from streams import consumers, protocol
from trading.apis import OrderInputSerializer, PositionCloseApi, PositionDetailApi
from trading.schemas import ORDER_REQUEST_EXAMPLES, POSITION_CLOSE_EXAMPLES, PROTECTION_UPDATE_EXAMPLES
from webhooks.event_types import EVENT_TYPES

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


# --- tags, examples, webhooks and the AsyncAPI document -------------------------------------------

HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture
def schema(api_client) -> dict[str, Any]:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _operations(path_items: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in path_items.items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_every_operation_has_exactly_one_tag_of_the_areas_and_every_area_is_used(schema):
    assert [tag["name"] for tag in schema["tags"]] == [
        "auth",
        "account",
        "market data",
        "trading",
        "deposits",
        "webhooks",
        "streams",
        "admin",
    ]
    assert all(tag["description"] for tag in schema["tags"])
    used = set()
    for path, method, operation in _operations(schema["paths"]) + _operations(schema["webhooks"]):
        assert len(operation.get("tags", [])) == 1, (path, method, operation.get("tags"))
        assert operation["tags"][0] in TAG_NAMES, (path, method, operation["tags"])
        used.add(operation["tags"][0])
    assert used == set(TAG_NAMES)


@pytest.mark.parametrize(
    ("path", "method", "tag"),
    [
        ("/api/v1/auth/login", "post", "auth"),
        ("/api/v1/me", "get", "account"),
        ("/api/v1/wallets/mpc", "post", "account"),
        ("/api/v1/account", "get", "account"),
        ("/api/v1/prices/{symbol}", "get", "market data"),
        ("/api/v1/pairs", "get", "market data"),
        ("/api/v1/orders", "post", "trading"),
        ("/api/v1/positions/{position_id}/close", "post", "trading"),
        ("/api/v1/deposits", "post", "deposits"),
        ("/api/v1/webhooks/endpoints", "post", "webhooks"),
        ("/api/v1/events", "get", "streams"),
        ("/api/v1/admin/users", "get", "admin"),
        ("/api/v1/admin/deposits", "get", "admin"),
        ("/api/v1/health", "get", "admin"),
    ],
)
def test_operations_are_tagged_by_area(schema, path, method, tag):
    assert schema["paths"][path][method]["tags"] == [tag]


REQUEST_EXAMPLES = [
    ("/api/v1/auth/register", "post", {"Register"}),
    ("/api/v1/auth/login", "post", {"Login"}),
    ("/api/v1/auth/siwe/verify", "post", {"SIWESignature"}),
    ("/api/v1/wallets/external", "post", {"SIWESignature"}),
    ("/api/v1/me/identities/{method}", "post", {"SIWELink", "EmailLink"}),
    ("/api/v1/wallets/mpc", "post", {"PrivyMPCWallet"}),
    (
        "/api/v1/orders",
        "post",
        {"MarketOrderWithStop-lossAndTake-profit", "LimitOrderWithATrailingStop"},
    ),
    (
        "/api/v1/positions/{position_id}/close",
        "post",
        {"CloseAllAtMarket", "ClosePartWithALimitOrder"},
    ),
    ("/api/v1/positions/{position_id}", "patch", {"MoveTheStop-loss,SetATake-profit"}),
    ("/api/v1/deposits", "post", {"ReportADepositOnArbitrum"}),
    ("/api/v1/webhooks/endpoints", "post", {"OrdersAndPositions"}),
]


@pytest.mark.parametrize(("path", "method", "names"), REQUEST_EXAMPLES)
def test_main_request_bodies_carry_examples(schema, path, method, names):
    content = schema["paths"][path][method]["requestBody"]["content"]["application/json"]
    assert names <= set(content.get("examples", {})), sorted(content.get("examples", {}))
    for example in content["examples"].values():
        assert isinstance(example["value"], dict) and example["value"]


def test_order_response_and_error_shape_examples(schema):
    responses = schema["paths"]["/api/v1/orders"]["post"]["responses"]
    order = responses["201"]["content"]["application/json"]["examples"]["FilledMarketOrder"]["value"]
    order_schema = schema["components"]["schemas"]["Order"]
    assert set(order) == set(order_schema["properties"])
    error = responses["400"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/Error"}
    for example in error["examples"].values():
        assert set(example["value"]) == {"error"}
        assert set(example["value"]["error"]) == {"code", "message", "details"}


def test_every_operation_documents_its_errors_in_the_error_shape(schema):
    """Found by fuzzing the schema: operations documented only their successes, so a client
    (and a contract test) could not tell a 401 or a 404 from a broken server."""
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in _operations(schema["paths"]):
        responses = operation["responses"]
        assert responses["default"]["content"]["application/json"]["schema"] == error, (method, path)
        for status in ("400", "401", "403", "404", "429", "503"):
            if status in responses and not (path == "/api/v1/health" and status == "503"):
                assert responses[status]["content"]["application/json"]["schema"] == error, (method, path)
        assert ("404" in responses) == ("{" in path), (method, path)
        signed_in = {} not in operation.get("security", [{}])
        assert ("401" in responses) == signed_in, (method, path)
        if path.startswith("/api/v1/admin/"):
            assert "403" in responses, (method, path)
    account = schema["paths"]["/api/v1/account"]["get"]["responses"]
    assert set(account) == {"200", "401", "429", "default"}


def test_output_fields_that_are_sometimes_absent_are_not_required(schema):
    components = schema["components"]["schemas"]
    assert components["OrderPreview"]["required"] == ["ok", "reject_code"]
    assert "required" not in components["Trailing"]


def test_webhooks_document_every_event_type_with_payload_and_signing_headers(schema):
    assert set(schema["webhooks"]) == set(EVENT_TYPES)
    components = schema["components"]["schemas"]
    for event_type, item in schema["webhooks"].items():
        operation = item["post"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers, event_type
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        envelope = components[ref.rsplit("/", 1)[1]]
        assert set(envelope["properties"]) == {"id", "type", "seq", "created_at", "data"}
        assert envelope["properties"]["type"]["const"] == event_type
        data_ref = envelope["properties"]["data"]["$ref"]
        assert data_ref.rsplit("/", 1)[1] in components, event_type
    order_filled = schema["webhooks"]["order.filled"]["post"]["requestBody"]["content"]["application/json"]
    filled = components[order_filled["schema"]["$ref"].rsplit("/", 1)[1]]
    assert filled["properties"]["data"] == {"$ref": "#/components/schemas/Order"}


def test_schema_description_links_the_asyncapi_document(schema):
    assert "/api/asyncapi.yaml" in schema["info"]["description"]


def _asyncapi(client, suffix: str) -> dict[str, Any]:
    response = client.get(f"/api/asyncapi.{suffix}", HTTP_HOST="localhost")
    assert response.status_code == 200
    return yaml.safe_load(response.content) if suffix == "yaml" else response.json()


def test_asyncapi_document_is_served_and_lists_every_channel_message_and_op(client):
    document = _asyncapi(client, "yaml")
    assert document == _asyncapi(client, "json")
    assert document["asyncapi"].startswith("3.")
    assert document["servers"]["default"]["protocol"] == "ws"

    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"/ws", protocol.PRICE_PREFIX + "{symbol}", *protocol.USER_CHANNELS}

    messages = document["components"]["messages"]
    payload_types = {
        message["payload"]["properties"]["type"]["const"]
        for message in messages.values()
        if "type" in message["payload"]["properties"]
    }
    assert payload_types == set(protocol.MESSAGE_TYPES)
    ops = {
        message["payload"]["properties"]["op"]["const"]
        for message in messages.values()
        if "op" in message["payload"]["properties"]
    }
    assert ops == set(protocol.CLIENT_OPS)

    # Every event a socket receives is listed under its message type; webhook.test is not sent there.
    listed = {
        event_type
        for message in messages.values()
        for event_type in message["payload"]["properties"].get("event", {}).get("enum", [])
    }
    assert listed == {t for t in EVENT_TYPES if protocol.event_route(t) is not None}
    assert "webhook.test" not in listed

    # Each user channel carries its snapshot and the message types routed to it.
    for channel in protocol.USER_CHANNELS:
        carried = set(document["channels"][channel]["messages"])
        routed = {
            route.message_type
            for route in protocol.event_routes().values()
            if channel in route.channels or not route.channels
        }
        assert carried == {"snapshot", *routed}, channel

    # Every reference resolves inside the document, and every close code is described.
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    for code in protocol.CloseCode:
        assert f"| {int(code)} | `{protocol.CLOSE_ERROR_CODES[code]}` |" in document["info"]["description"]
    assert "order_update" in document["channels"]["orders"]["messages"]
    order_data = messages["order_update"]["payload"]["properties"]["data"]
    assert order_data == {"$ref": "#/components/schemas/Order"}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_stream_constants_cover_what_the_consumer_sends_and_accepts():
    """The docs are built from streams.protocol's lists; the consumer's literals must be in them."""
    source = "\n".join(Path(str(module.__file__)).read_text() for module in (consumers, protocol))
    sent = set(re.findall(r'"type": "(\w+)"', source))
    assert sent <= set(protocol.MESSAGE_TYPES), sent - set(protocol.MESSAGE_TYPES)
    accepted = set(re.findall(r'op == "(\w+)"', Path(str(consumers.__file__)).read_text()))
    assert accepted == set(protocol.CLIENT_OPS)
    assert set(protocol.CLOSE_ERROR_CODES) == set(protocol.CloseCode)


@pytest.mark.parametrize(
    ("serializer_class", "examples"),
    [
        (OrderInputSerializer, ORDER_REQUEST_EXAMPLES),
        (PositionCloseApi.InputSerializer, POSITION_CLOSE_EXAMPLES),
        (PositionDetailApi.ProtectionSerializer, PROTECTION_UPDATE_EXAMPLES),
        (SiweInputSerializer, [SIWE_EXAMPLE]),
    ],
)
def test_request_examples_are_accepted_by_the_input_serializers(serializer_class, examples):
    for example in examples:
        serializer = serializer_class(data=example.value)
        assert serializer.is_valid(), (example.name, serializer.errors)


def test_every_event_type_the_apps_publish_is_in_the_event_type_list():
    """The docs list EVENT_TYPES; an event published under another name would go undocumented
    (and could not be subscribed to by name)."""
    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r'(?:\btype=|\bevent=|_publish\(\w+, |_EVENT_TYPE = )"([a-z]+\.[a-z_]+)"')
    published = {
        match
        for app in ("accounts", "trading", "deposits", "webhooks", "ledger", "pricing")
        for path in (root / app).rglob("*.py")
        if "migrations" not in path.parts
        for match in pattern.findall(path.read_text())
    }
    assert {"order.filled", "swap.failed", "webhook.test", "account.webhook_disabled"} <= published
    assert published <= set(EVENT_TYPES), published - set(EVENT_TYPES)
