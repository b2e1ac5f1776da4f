"""The API against its committed OpenAPI 3.1 document, fuzzed by schemathesis on the running app.

No 5xx, and every response (status, content type, body) matches the document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from .conftest import make_app

TOKEN: dict[str, str] = {}
DOC = Path(__file__).resolve().parents[2] / "webapp" / "openapi.json"


@pytest.fixture(scope="module")
def api_app(seeded_store: Any, users_db: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import useraudit
    from useraudit.webapp.api_tokens import TokenStore

    folder = tmp_path_factory.mktemp("openapi")
    useraudit.configure(spool_dir=folder / "spool", durability="batch")
    tokens = TokenStore(folder / "tokens.db")
    _, TOKEN["acme"] = tokens.create(
        "acme", "schemathesis", ("events:read",), created_by={"id": "u1", "name": "alice"}
    )
    return make_app(
        seeded_store,
        users_db,
        USERAUDIT_API_TOKENS=str(folder / "tokens.db"),
        USERAUDIT_API_RATE="1000000 per minute",
    )


@pytest.fixture(scope="module")
def api_schema(api_app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_every_response_matches_the_document(api_schema: Any) -> None:
    # schemathesis's pytest plugin does not run on this pytest; drive its
    # strategies with hypothesis directly, operation by operation.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} == {"/events", "/facets", "/events/{event_id}"}
    statuses: dict[str, set[int]] = {}
    for operation in operations:

        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN['acme']}"}, checks=CHECKS
            )
            statuses.setdefault(case.operation.path, set()).add(response.status_code)

        check()
    # the fuzz reached the routes themselves, not only their refusals
    assert 200 in statuses["/events"] and 400 in statuses["/events"], statuses
    assert 200 in statuses["/facets"] and 404 in statuses["/events/{event_id}"], statuses


def test_the_served_document_is_the_committed_one(api_app: Any) -> None:
    served = api_app.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.is_json
    assert served.json == json.loads(DOC.read_text())
    assert served.json["openapi"].startswith("3.1")
