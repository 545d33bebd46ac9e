"""Extensions over the HTTP API: the CLI's validation, 409 on duplicates, 422 naming fields."""

from __future__ import annotations

from pbx.sip.digest import compute_ha1
from tests.unit.test_api_fakes import Api, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"


async def create(api: Api, **body: object) -> object:
    return await api.post("/api/v1/extensions", json=body)


async def test_create_then_read_list_update_delete(api: Api) -> None:
    response = await create(api, number="2001", password="long-secret-1", name="Reception",
                            record_policy="always", permission="internal")  # fmt: skip
    assert response.status == 201
    assert response.headers["Location"] == "/api/v1/extensions/2001"
    created = await response.json()
    assert created == {
        "number": "2001", "name": "Reception", "enabled": True, "record_policy": "always",
        "permission": "internal", "created": api.clock(), "contacts": 0,
    }  # fmt: skip
    stored = api.pbx.store.get_extension("2001")
    assert stored.ha1_md5 == compute_ha1("2001", "deskpbx", "long-secret-1", "MD5")

    listing = await (await api.get("/api/v1/extensions")).json()
    assert [e["number"] for e in listing["items"]] == ["2001"]

    response = await api.patch("/api/v1/extensions/2001",
                               json={"name": "Front desk", "enabled": False})  # fmt: skip
    assert response.status == 200
    updated = await response.json()
    assert (updated["name"], updated["enabled"], updated["record_policy"]) == (
        "Front desk", False, "always",
    )  # fmt: skip

    assert (await api.delete("/api/v1/extensions/2001")).status == 204
    response = await api.get("/api/v1/extensions/2001")
    assert response.status == 404
    assert (await response.json(content_type=PROBLEM))["detail"] == "no extension 2001"


async def test_password_is_generated_and_returned_once(api: Api) -> None:
    response = await create(api, number="2002")
    body = await response.json()
    password = body["password"]
    assert len(password) == 16
    stored = api.pbx.store.get_extension("2002")
    assert stored.ha1_md5 == compute_ha1("2002", "deskpbx", password, "MD5")
    again = await (await api.get("/api/v1/extensions/2002")).json()
    assert "password" not in again


async def test_duplicate_is_409(api: Api) -> None:
    assert (await create(api, number="2003", password="long-secret-1")).status == 201
    response = await create(api, number="2003", password="long-secret-2")
    assert response.status == 409
    assert (await response.json(content_type=PROBLEM))["detail"] == "extension 2003 already exists"


async def test_validation_is_422_listing_every_bad_field(api: Api) -> None:
    response = await create(api, number="12a", password="short", record_policy="sometimes",
                            enabled="yes", colour="blue")  # fmt: skip
    assert response.status == 422
    body = await response.json(content_type=PROBLEM)
    fields = {e["field"]: e["detail"] for e in body["errors"]}
    assert set(fields) == {"colour", "number", "record_policy", "enabled"}
    assert fields["number"] == "invalid extension number '12a': use 2 to 10 digits"
    assert fields["record_policy"].startswith("record policy must be one of: always, never")
    assert fields["enabled"] == "must be true or false"
    assert body["detail"].endswith("(and 3 more)")
    assert api.pbx.store.list_extensions() == []


async def test_weak_password_is_422_on_the_password_field(api: Api) -> None:
    response = await create(api, number="2004", password="2004")
    body = await response.json(content_type=PROBLEM)
    assert response.status == 422
    assert body["errors"] == [
        {"field": "password",
         "detail": "password for extension 2004 is too short: use at least 8 characters"}
    ]  # fmt: skip


async def test_missing_number_is_required(api: Api) -> None:
    response = await create(api, name="nobody")
    body = await response.json(content_type=PROBLEM)
    assert body["errors"] == [{"field": "number", "detail": "required"}]


async def test_patch_password_changes_the_ha1(api: Api) -> None:
    await create(api, number="2005", password="long-secret-1")
    response = await api.patch("/api/v1/extensions/2005", json={"password": "another-secret"})
    assert response.status == 200
    stored = api.pbx.store.get_extension("2005")
    assert stored.ha1_md5 == compute_ha1("2005", "deskpbx", "another-secret", "MD5")


async def test_patch_unknown_is_404_and_bad_number_422(api: Api) -> None:
    assert (await api.patch("/api/v1/extensions/2999", json={"name": "x"})).status == 404
    response = await api.get("/api/v1/extensions/abc")
    assert response.status == 422
    assert "use 2 to 10 digits" in (await response.json(content_type=PROBLEM))["detail"]


async def test_contacts_count_comes_from_live_bindings(api: Api) -> None:
    from pbx.store import Binding

    await create(api, number="2006", password="long-secret-1")
    api.pbx.store.upsert_binding(
        Binding("2006", "sip:2006@10.0.0.5:5060", "10.0.0.5", 5060, "UDP", api.clock() + 60)
    )
    body = await (await api.get("/api/v1/extensions/2006")).json()
    assert body["contacts"] == 1
    regs = await (await api.get("/api/v1/registrations")).json()
    assert regs["items"] == [{
        "extension": "2006", "contact": "sip:2006@10.0.0.5:5060", "source": "10.0.0.5:5060",
        "transport": "UDP", "expires_at": api.clock() + 60, "user_agent": "", "reachable": True,
    }]  # fmt: skip
