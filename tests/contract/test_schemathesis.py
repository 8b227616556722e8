"""Our own OpenAPI schema, fuzzed in-process with Schemathesis.

The schema is the one clients read (``GET /api/schema/``, drf-spectacular); every operation in
it is called with data generated from it (the documented examples, Schemathesis's coverage
cases: missing, mistyped and boundary values, unsupported methods; then a few generated
examples) as a funded trader of the paper market, and the operations that answer staff
differently (the back office, analytics, health: ``conftest.STAFF_PATHS``) as staff as well,
through Django's WSGI handler inside the test's database transaction. No operation is excluded. Each answer
must not be a 500 (nor a 5xx the operation does not document), must have a documented status
and content type and a body that matches the documented schema, and every error body is the
shared error shape of API.md.

The run is bounded and reproducible: derandomized Hypothesis, a few examples per operation,
no shrinking, no example database. A failure names the operation and prints a curl command
that reproduces it; each finding so far has a targeted regression test next to the app's
own tests.

The schema is loaded eagerly (``from_dict``) rather than through ``schemathesis.pytest.
from_fixture``, whose lazy loader sets a node attribute pytest 9 no longer has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from marqetfi.core.throttling import throttle_counters_clear
from tests.documented import openapi_document
from tests.trading.conftest import (  # noqa: F401  (fixtures: a paper market and its users)
    paper_answer_mode,
    paper_market,
    paper_options,
    staff,
    trader,
)

MAX_EXAMPLES_PER_OPERATION = 3


@schemathesis.check
def no_undocumented_server_error(
    ctx: CheckContext, response: Response, case: schemathesis.Case
) -> bool | None:
    """No 5xx unless the operation documents that very status as an answer of its own: a
    sign-in method or wallet provider this server has no keys for is 503
    ``auth_method_unavailable`` / ``wallet_provider_unavailable`` by design (README), which a
    client handles like any documented error. A 500, or any 5xx not listed, is a bug."""
    if response.status_code < 500:
        return None
    documented = case.operation.responses.status_codes
    assert response.status_code != 500 and str(response.status_code) in documented, (
        f"server error {response.status_code} (documented: {', '.join(documented)}): {response.text[:500]}"
    )
    return True


@schemathesis.check
def error_in_the_shared_shape(ctx: CheckContext, response: Response, case: schemathesis.Case) -> bool | None:
    """Every error body is ``{"error": {"code", "message", "details"}}`` (API.md), whatever raised it."""
    if response.status_code < 400:
        return None
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, (
        f"{response.status_code} body is not the shared error shape: {body!r}"
    )
    assert isinstance(error["code"], str) and error["code"], f"error code is not a string: {error!r}"
    assert isinstance(error["message"], str), f"error message is not a string: {error!r}"
    assert isinstance(error["details"], dict | list), f"error details are not structured: {error!r}"
    return True


CHECKS = [
    no_undocumented_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_in_the_shared_shape,
]


# Generated at collection, before any database is reachable (the view's middleware would read
# one); test_the_fuzzed_document_is_the_served_one holds it equal to what the view serves.
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = WSGIHandler()
schema.config.generation.update(
    max_examples=MAX_EXAMPLES_PER_OPERATION, no_shrink=True, deterministic=True, database="none"
)


@pytest.fixture
def _keep_the_test_connection() -> Iterator[None]:
    """Keep the test's connection open across requests (as Django's test client does):
    closing it would end the transaction the test runs in."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def resolve_to_a_public_address(host: str, port: int) -> list[str]:
    """Every webhook host resolves at once, to a public address: the suite makes no DNS
    queries (where none answer, each waited 5 s for ``unresolvable_host``)."""
    return ["93.184.215.14"]


@pytest.fixture
def _no_dns(settings: Any) -> None:
    settings.WEBHOOK_DNS_RESOLVER = f"{__name__}.resolve_to_a_public_address"


@pytest.fixture(params=["trader", "staff"])
def caller(request: pytest.FixtureRequest, db: None, _keep_the_test_connection: None, _no_dns: None) -> Any:
    """The funded trader of the paper market (every pair routed to the paper venue), or a
    staff user, who also reaches ``/admin``."""
    request.getfixturevalue("paper_market")
    return request.getfixturevalue(request.param)


def test_the_fuzzed_document_is_the_served_one(db: None, api_client: Any) -> None:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json() == openapi_document()


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case, caller: Any) -> None:
    # Rate limits are their own tests; here they would turn most calls into 429s.
    throttle_counters_clear()
    access = str(RefreshToken.for_user(caller).access_token)
    case.call_and_validate(headers={"Authorization": f"Bearer {access}"}, checks=CHECKS)
