"""Bearer-token auth and RFC 9457 problem answers of the HTTP API."""

from __future__ import annotations

from tests.unit.test_api_fakes import Api, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"


async def test_missing_token_is_401_problem_with_bearer_challenge(api: Api) -> None:
    response = await api.client.get("/api/v1/status")
    assert response.status == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="deskpbx"'
    body = await response.json(content_type=PROBLEM)
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    assert "deskpbx token create" in body["detail"]
    assert body["instance"] == "/api/v1/status"


async def test_unknown_token_is_401_invalid_token(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/status", headers={"Authorization": "Bearer dpbx_not-a-real-token"}
    )
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    body = await response.json(content_type=PROBLEM)
    assert body["detail"].startswith("unknown or revoked token")


async def test_revoked_token_stops_working(api: Api) -> None:
    assert (await api.get("/api/v1/status")).status == 200
    api.pbx.store.revoke_api_token("test")
    assert (await api.get("/api/v1/status")).status == 401


async def test_good_token_is_accepted_and_its_last_use_recorded(api: Api) -> None:
    response = await api.get("/api/v1/status")
    assert response.status == 200
    body = await response.json()
    assert body == {"version": "0.1.0", "uptime": 12.5, "active_calls": 0, "registered": 2,
                    "call_limits": {"max_calls": 10, "max_call_rate": 0.0, "refused_full": 3,
                                    "refused_rate": 0},
                    "media_timeout": {"seconds": 60.0, "ended": 2},
                    "dialog_ping": {"seconds": 0.0, "ended": 3},
                    "session_timers": {"min_se": 90, "active": 1, "ended": 1},
                    "auth_bans": {"after": 2, "window": 60.0, "seconds": 600.0, "bans": 0,
                                  "dropped": 0, "banned": []},
                    "dns": {"names": 0, "lookups_running": 0, "nameservers": ["192.0.2.53:53"],
                            "targets_down": 0},
                    "trunks": []}  # fmt: skip
    [token] = api.pbx.store.list_api_tokens()
    assert token.last_used == api.clock()


async def test_basic_auth_scheme_is_not_a_token(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/status", headers={"Authorization": f"Basic {api.token}"}
    )
    assert response.status == 401


async def test_openapi_document_needs_no_token(api: Api) -> None:
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200
    assert (await response.json())["openapi"] == "3.1.0"


async def test_malformed_json_is_400_problem_naming_the_position(api: Api) -> None:
    response = await api.post("/api/v1/extensions", data=b'{"number": "1001",')
    assert response.status == 400
    body = await response.json(content_type=PROBLEM)
    assert body["status"] == 400
    assert body["detail"].startswith("malformed JSON at line 1 column")


async def test_json_that_is_not_an_object_is_400(api: Api) -> None:
    response = await api.post("/api/v1/extensions", data=b"[1, 2]")
    assert response.status == 400
    assert (await response.json(content_type=PROBLEM))["detail"] == (
        "the body must be a JSON object, not list"
    )


async def test_empty_body_is_400(api: Api) -> None:
    response = await api.post("/api/v1/extensions", data=b"")
    assert response.status == 400
    assert "empty body" in (await response.json(content_type=PROBLEM))["detail"]


async def test_unknown_path_is_404_problem(api: Api) -> None:
    response = await api.get("/api/v1/nothing-here")
    assert response.status == 404
    body = await response.json(content_type=PROBLEM)
    assert "/api/v1/openapi.json" in body["detail"]


async def test_wrong_method_is_405_problem_listing_allowed(api: Api) -> None:
    response = await api.client.put("/api/v1/status", headers=api.auth)
    assert response.status == 405
    body = await response.json(content_type=PROBLEM)
    assert "GET" in body["detail"]
    assert "GET" in response.headers["Allow"]


async def test_oversized_body_is_413_problem(api: Api) -> None:
    response = await api.post("/api/v1/extensions", data=b"{" + b" " * 70_000 + b"}")
    assert response.status == 413
    assert (await response.json(content_type=PROBLEM))["status"] == 413


async def test_a_crash_is_500_problem_without_traceback(api: Api) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("secret internals")

    api.pbx.status = broken  # type: ignore[method-assign]
    response = await api.get("/api/v1/status")
    assert response.status == 500
    text = await response.text()
    assert "secret internals" not in text
    assert "see its log" in text


async def test_body_that_is_not_utf8_is_400(api: Api) -> None:
    response = await api.post("/api/v1/extensions", data=b'{"number": "\xff\xfe"}')
    assert response.status == 400
    body = await response.json(content_type=PROBLEM)
    assert body["detail"] == "malformed JSON: the body is not UTF-8 text"
