"""Property-based run of every operation in the OpenAPI document (schemathesis strategies driven by
hypothesis): no 500s, responses conform to the schema. Runs as an admin API token, so admin operations
are exercised too; the 401/403 cases are in test_api.py."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Portal
from tlsgate.portal.tokens import issue_api_token


def test_api_never_fails(portal: Portal) -> None:
    with portal.store.session() as session:
        secret, _ = issue_api_token(session, "fuzz", "admin", portal.clock(), None)
    headers = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", portal.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    strategy = st.one_of([op.as_strategy() for op in operations])
    failures: list[str] = []

    @given(case=strategy)
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
        assert response.status_code < 500
        case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])

    run()
    assert failures == []
