"""A bounded fuzz run over the OpenAPI schema (schemathesis): valid and invalid requests to every operation,
none answered with a 5xx. Deterministic (derandomized) and small: a few hundred cases in all."""

from __future__ import annotations

import pytest
from http_support import EndlessLLM, fenced, make_app, make_service, use_bm25

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

CASES_PER_OPERATION_AND_MODE = 10


@pytest.fixture(autouse=True)
def _bm25(monkeypatch):
    use_bm25(monkeypatch)


def test_fuzzing_the_api_finds_no_server_error(tmp_path) -> None:
    llm = EndlessLLM(fenced("SELECT name, age FROM singer ORDER BY age"))
    service = make_service(tmp_path, llm)
    try:
        # schemathesis' ASGI client sends Host: localhost (allowed) or testserver
        app = make_app(service, extra_hosts=["testserver"])
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        seed = {"sql": service.run_sql(None, "SELECT 1 AS x"), "example": service.add_example(
            None, "How many singers?", "SELECT count(*) FROM singer")}
        assert seed["sql"]["id"] and seed["example"]["new"]
        operations = [result.ok() for result in schema.get_all_operations()]
        labels = {op.label for op in operations}
        assert {"POST /api/v1/ask", "POST /api/v1/ask/stream", "POST /api/v1/sql", "POST /api/v1/feedback",
                "GET /api/v1/history/{entry_id}.csv", "DELETE /api/v1/examples/{example_id}"} <= labels
        calls: dict[str, int] = {}
        server_errors: list[str] = []

        def fuzz(operation, mode) -> None:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=CASES_PER_OPERATION_AND_MODE, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def call(case) -> None:
                response = case.call()
                calls[operation.label] = calls.get(operation.label, 0) + 1
                if response.status_code >= 500:
                    server_errors.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r:.200}"
                                         f" -> {response.status_code} {response.text[:200]}")
                elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                    body = response.json()
                    assert set(body) == {"detail"} and "\n" not in body["detail"], body

            try:
                call()
            except Unsatisfiable:  # no invalid request to make: an operation without parameters or body
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label

        for operation in operations:
            for mode in schemathesis.GenerationMode:
                fuzz(operation, mode)
        assert server_errors == []
        assert sum(calls.values()) >= 100 and set(calls) == labels
    finally:
        service.close()
