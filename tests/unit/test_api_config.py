"""Trunks, outbound routes and DIDs over the HTTP API, validated as the CLI validates them."""

from __future__ import annotations

from tests.unit.test_api_fakes import WALL, Api, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"


async def make_trunk(api: Api, name: str = "carrier", **extra: object) -> dict[str, object]:
    response = await api.post("/api/v1/trunks", json={"name": name, "host": "sip.example.net",
                                                       "username": "u1", "password": "pw-123456",
                                                       **extra})  # fmt: skip
    assert response.status == 201, await response.text()
    return await response.json()


async def test_trunk_crud_hides_the_password(api: Api) -> None:
    created = await make_trunk(api, transport="tcp", max_calls=4)
    assert created["password_set"] is True
    assert "password" not in created
    assert (created["transport"], created["port"], created["max_calls"]) == ("TCP", 5060, 4)
    assert created["status"] == "unknown" and created["created"] == WALL
    assert api.pbx.store.get_trunk("carrier").password == "pw-123456"
    response = await api.patch("/api/v1/trunks/carrier", json={"port": 5080, "enabled": False})
    body = await response.json()
    assert (body["port"], body["enabled"]) == (5080, False)
    listing = await (await api.get("/api/v1/trunks")).json()
    assert [t["name"] for t in listing["items"]] == ["carrier"]
    status = await (await api.get("/api/v1/status")).json()
    assert status["trunks"] == [{"name": "carrier", "enabled": False, "register": False,
                                 "status": "unknown", "status_at": 0.0, "servers": []}]  # fmt: skip
    assert (await api.delete("/api/v1/trunks/carrier")).status == 204
    response = await api.get("/api/v1/trunks/carrier")
    assert response.status == 404
    assert (await response.json(content_type=PROBLEM))["detail"] == "no trunk carrier"


async def test_trunk_validation_and_duplicates(api: Api) -> None:
    await make_trunk(api)
    response = await api.post("/api/v1/trunks", json={"name": "carrier", "host": "h.example"})
    assert response.status == 409
    assert (await response.json(content_type=PROBLEM))["detail"] == "trunk carrier already exists"
    response = await api.post("/api/v1/trunks", json={"name": "t2", "port": 70000, "register": 1})
    body = await response.json(content_type=PROBLEM)
    assert {e["field"] for e in body["errors"]} == {"host", "port", "register"}
    response = await api.post("/api/v1/trunks", json={"name": "t2", "host": "h", "register": True})
    assert response.status == 422
    assert (await response.json(content_type=PROBLEM))["detail"] == (
        "a trunk that registers needs a username"
    )
    response = await api.post("/api/v1/trunks", json={"name": "t 2", "host": "h"})
    assert response.status == 422
    assert "bad trunk name" in (await response.json(content_type=PROBLEM))["detail"]


async def test_routes_append_move_and_refuse_unknown_trunks(api: Api) -> None:
    await make_trunk(api, "a")
    await make_trunk(api, "b")
    for name, trunks in (("local", ["a"]), ("intl", ["a", "b"])):
        response = await api.post("/api/v1/routes", json={
            "name": name, "patterns": ["9|NXXNXXXXXX"], "trunks": trunks, "strip": 1,
            "strategy": "round-robin"})  # fmt: skip
        assert response.status == 201, await response.text()
    body = await (await api.get("/api/v1/routes")).json()
    assert [(r["name"], r["position"]) for r in body["items"]] == [("local", 1), ("intl", 2)]
    assert body["items"][1]["trunks"] == ["a", "b"]
    assert body["items"][1]["strategy"] == "round-robin"
    assert body["items"][1]["record_policy"] == "never"
    response = await api.post(
        "/api/v1/routes",
        json={"name": "rec", "patterns": ["8|X."], "trunks": ["a"], "record_policy": "always"},
    )
    assert (await response.json())["record_policy"] == "always"
    await api.delete("/api/v1/routes/rec")
    moved = await (await api.patch("/api/v1/routes/intl", json={"position": 1})).json()
    assert moved["position"] == 1
    one = await (await api.get("/api/v1/routes/local")).json()
    assert one["position"] == 2
    response = await api.post("/api/v1/routes", json={
        "name": "x", "patterns": ["9|NXX"], "trunks": ["nope"]})  # fmt: skip
    assert response.status == 422
    body = await response.json(content_type=PROBLEM)
    assert body["errors"] == [{"field": "trunks", "detail": "no trunk nope"}]
    response = await api.post("/api/v1/routes", json={"name": "y", "patterns": ["re:("],
                                                       "trunks": []})  # fmt: skip
    body = await response.json(content_type=PROBLEM)
    assert {e["field"] for e in body["errors"]} == {"patterns", "trunks"}
    assert (await api.delete("/api/v1/routes/local")).status == 204
    assert (await api.get("/api/v1/routes/local")).status == 404
    assert (await api.patch("/api/v1/routes/local", json={"position": 1})).status == 404


async def test_dids(api: Api) -> None:
    api.pbx.store.add_extension("1001", "long-secret-1")
    await make_trunk(api)
    response = await api.post(
        "/api/v1/dids",
        json={
            "number": "+4930123",
            "target_kind": "extension",
            "target": "1001",
            "trunk": "carrier",
        },
    )
    assert response.status == 201
    assert await response.json() == {"number": "+4930123", "target_kind": "extension",
                                     "target": "1001", "trunk": "carrier"}  # fmt: skip
    response = await api.post("/api/v1/dids", json={"number": "+4930123",
                                                     "target_kind": "softphone"})  # fmt: skip
    assert response.status == 409
    response = await api.post("/api/v1/dids", json={"number": "555", "target_kind": "extension",
                                                     "target": "1999"})  # fmt: skip
    assert (await response.json(content_type=PROBLEM))["errors"] == [
        {"field": "target", "detail": "no extension 1999"}]  # fmt: skip
    response = await api.post("/api/v1/dids", json={"number": "555", "target_kind": "softphone",
                                                     "trunk": "other"})  # fmt: skip
    assert (await response.json(content_type=PROBLEM))["errors"][0]["field"] == "trunk"
    response = await api.post("/api/v1/dids", json={"number": "abc", "target_kind": "fax"})
    body = await response.json(content_type=PROBLEM)
    detail = "must be one of: extension, group, softphone"
    assert body["errors"] == [{"field": "target_kind", "detail": detail}]
    response = await api.post("/api/v1/dids", json={"number": "abc", "target_kind": "softphone"})
    assert (await response.json(content_type=PROBLEM))["errors"][0]["field"] == "number"
    got = await (await api.get("/api/v1/dids/+4930123")).json()
    assert got["target"] == "1001"
    assert (await api.delete("/api/v1/dids/+4930123")).status == 204
    assert (await api.get("/api/v1/dids/+4930123")).status == 404


async def test_trunk_host_null_is_required_not_a_crash(api: Api) -> None:
    response = await api.post("/api/v1/trunks", json={"name": "t3", "host": None})
    assert response.status == 422
    body = await response.json(content_type=PROBLEM)
    assert body["errors"] == [{"field": "host", "detail": "required"}]


async def test_a_trunk_by_name_without_port_locates_its_servers_by_dns_srv(api: Api) -> None:
    """RFC 3263 §4.2, as `deskpbx trunk add` decides: no port and a name means SRV."""
    assert (await make_trunk(api, "by-name"))["srv"] is True
    assert (await make_trunk(api, "with-port", port=5070))["srv"] is False
    assert (await make_trunk(api, "told", srv=False))["srv"] is False
    assert (await make_trunk(api, "address", host="192.0.2.7"))["srv"] is False
    body = await (await api.patch("/api/v1/trunks/told", json={"srv": True})).json()
    assert body["srv"] is True and api.pbx.store.get_trunk("told").srv is True


async def test_match_networks_over_the_api(api: Api) -> None:
    created = await make_trunk(api, "ranges", match_networks="203.0.113.0/24")
    assert created["match_networks"] == "203.0.113.0/24"
    response = await api.patch("/api/v1/trunks/ranges", json={"match_networks": "nonsense"})
    assert response.status == 422
    body = await response.json(content_type=PROBLEM)
    assert "bad match network 'nonsense'" in str(body)
