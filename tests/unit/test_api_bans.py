"""Bans over the HTTP API: the banned addresses, and lifting a ban (pbx.auth_ban)."""

from __future__ import annotations

from tests.unit.test_api_fakes import Api, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"
SCANNER = "203.0.113.9"


async def test_banned_addresses_are_listed_and_a_ban_can_be_lifted(api: Api) -> None:
    assert await (await api.get("/api/v1/bans")).json() == {"items": []}
    bans = api.pbx.bans
    assert not bans.failed(SCANNER, api.clock()) and bans.failed(SCANNER, api.clock())
    body = await (await api.get("/api/v1/bans")).json()
    assert body == {"items": [{"address": SCANNER, "remaining": 600.0}]}
    assert (await api.delete(f"/api/v1/bans/{SCANNER}")).status == 204
    assert not bans.banned(SCANNER, api.clock())
    assert await (await api.get("/api/v1/bans")).json() == {"items": []}
    again = await api.delete(f"/api/v1/bans/{SCANNER}")
    assert again.status == 404
    assert (await again.json(content_type=PROBLEM))["detail"] == f"{SCANNER} is not banned"


async def test_bans_need_a_token(api: Api) -> None:
    assert (await api.client.get("/api/v1/bans")).status == 401
    assert (await api.client.delete(f"/api/v1/bans/{SCANNER}")).status == 401
