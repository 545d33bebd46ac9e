"""schemathesis against the HTTP API of a real PBX: no 5xx, every answer matches the document.

The document under test is the one the API serves (pbx.api.openapi.DOCUMENT).
Examples per operation are few (MAX_EXAMPLES) so the run stays within seconds
in CI; 501 is the documented answer of call actions while the B2BUA lacks
them, and is the only 5xx allowed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402
from schemathesis.specs.openapi import checks as oa_checks  # noqa: E402

from pbx.api import start_api  # noqa: E402
from pbx.api.auth import new_token, token_hash  # noqa: E402
from pbx.api.openapi import DOCUMENT  # noqa: E402
from tests.integration.pbx_harness import start_pbx  # noqa: E402

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 10
CHECKS = [
    oa_checks.status_code_conformance,
    oa_checks.content_type_conformance,
    oa_checks.response_schema_conformance,
    oa_checks.response_headers_conformance,
]
NOT_IMPLEMENTED_OK = 501

schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def api_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    pbx = start_pbx(Path(tmp_path_factory.mktemp("schemathesis")) / "pbx")
    api = asyncio.run_coroutine_threadsafe(start_api(pbx.pbx, "127.0.0.1", 0), pbx.loop).result(10)
    token = new_token()
    pbx.run(lambda: pbx.pbx.store.add_api_token("schemathesis", token_hash(token), time.time()))
    try:
        yield api.url, token
    finally:
        asyncio.run_coroutine_threadsafe(api.close(), pbx.loop).result(10)
        pbx.stop()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi_document(case, api_target: tuple[str, str]) -> None:
    base_url, token = api_target
    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                         timeout=10)  # fmt: skip
    assert response.status_code < 500 or response.status_code == NOT_IMPLEMENTED_OK, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    case.validate_response(response, checks=CHECKS)


def test_checks_exist() -> None:
    """Guard against a schemathesis upgrade that silently renames the checks used above."""
    assert callable(st_checks.not_a_server_error)
    assert all(callable(check) for check in CHECKS)
