"""Check an answer against the OpenAPI document clients read (``GET /api/schema/``)."""

from __future__ import annotations

import functools
import json
from typing import Any

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from jsonschema import Draft202012Validator


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document ``GET /api/schema/`` serves, generated without a request."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return dict(json.loads(OpenApiJsonRenderer().render(generated)))


def assert_documented(response: Any, *, path: str, method: str) -> None:
    """The answer's status is documented for ``method path`` (or covered by ``default``) and its
    JSON body matches the schema documented for that status."""
    document = openapi_document()
    responses = document["paths"][path][method.lower()]["responses"]
    status = str(response.status_code)
    assert status in responses or "default" in responses, (status, sorted(responses))
    documented = responses.get(status) or responses["default"]
    schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = [
        f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(response.json())
    ]
    assert not errors, errors
