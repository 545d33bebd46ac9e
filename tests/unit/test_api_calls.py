"""Active calls over the HTTP API: views of calls and legs, actions through B2BUA methods."""

from __future__ import annotations

from types import SimpleNamespace

from pbx.admission import CallLimitReached
from pbx.call import CallState
from tests.unit.test_api_fakes import WALL, Api, FakeCall, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"


def connected_call(api: Api) -> FakeCall:
    call = FakeCall("a1b2c3", "1001", "1002", state=CallState.CONNECTED, answer=WALL + 3,
                    x_headers={"X-Crm-Id": "77"}, forks=0)  # fmt: skip
    call.a_dialog = SimpleNamespace(state=SimpleNamespace(value="confirmed"))
    call.b_dialog = SimpleNamespace(state=SimpleNamespace(value="confirmed"))
    call.b_peer = SimpleNamespace(destination=("127.0.0.1", 5080), transport="TCP")
    api.pbx.b2bua.calls[call.label] = call
    return call


async def test_lists_calls_with_both_legs(api: Api) -> None:
    connected_call(api)
    ringing = FakeCall("ffff", "1003", "1004", forks=2)
    api.pbx.b2bua.calls[ringing.label] = ringing
    body = await (await api.get("/api/v1/calls")).json()
    by_label = {c["label"]: c for c in body["items"]}
    assert by_label["a1b2c3"] == {
        "label": "a1b2c3", "call_id": "a1b2c3@test", "caller": "1001", "callee": "1002",
        "state": "connected", "start": WALL, "answer": WALL + 3, "x_headers": {"X-Crm-Id": "77"},
        "ringing_contacts": 0,
        "legs": [
            {"side": "caller", "dialog_state": "confirmed", "peer": "127.0.0.1:5070",
             "transport": "UDP"},
            {"side": "callee", "dialog_state": "confirmed", "peer": "127.0.0.1:5080",
             "transport": "TCP"},
        ],
    }  # fmt: skip
    assert by_label["ffff"]["state"] == "ringing"
    assert by_label["ffff"]["ringing_contacts"] == 2
    assert by_label["ffff"]["legs"][1] == {
        "side": "callee", "dialog_state": None, "peer": None, "transport": None,
    }  # fmt: skip
    one = await (await api.get("/api/v1/calls/ffff")).json()
    assert one["caller"] == "1003"


async def test_unknown_call_is_404_before_anything_else(api: Api) -> None:
    for method, path in (("get", ""), ("delete", ""), ("post", "/recording"),
                         ("delete", "/recording")):  # fmt: skip
        response = await getattr(api, method)(f"/api/v1/calls/nope{path}")
        assert response.status == 404, (method, path)
        assert "no active call nope" in (await response.json(content_type=PROBLEM))["detail"]


async def test_actions_are_501_until_the_b2bua_has_them(api: Api) -> None:
    connected_call(api)
    api.pbx.store.add_extension("1001", "long-secret-1")
    cases = [
        ("delete", "/api/v1/calls/a1b2c3", None, "hangup"),
        ("post", "/api/v1/calls/a1b2c3/transfer", {"target": "1005"}, "transfer"),
        ("post", "/api/v1/calls/a1b2c3/recording", None, "start_recording"),
        ("delete", "/api/v1/calls/a1b2c3/recording", None, "stop_recording"),
        ("post", "/api/v1/calls/a1b2c3/dtmf", {"digits": "12#"}, "send_dtmf"),
        ("post", "/api/v1/calls", {"from": "1001", "to": "1002"}, "originate"),
    ]
    for method, path, body, name in cases:
        kwargs = {"json": body} if body is not None else {}
        response = await getattr(api, method)(path, **kwargs)
        assert response.status == 501, path
        detail = (await response.json(content_type=PROBLEM))["detail"]
        assert f"B2BUA method {name} missing" in detail


async def test_actions_call_the_b2bua_with_the_documented_arguments(api: Api) -> None:
    connected_call(api)
    api.pbx.store.add_extension("1001", "long-secret-1")
    b2bua = api.pbx.b2bua
    for name in ("hangup", "transfer", "start_recording", "stop_recording", "send_dtmf"):
        b2bua.enable(name)
    b2bua.enable("originate", result="beef01")
    assert (await api.post("/api/v1/calls/a1b2c3/transfer", json={"target": "1005"})).status == 202
    assert (await api.post("/api/v1/calls/a1b2c3/recording")).status == 202
    assert (await api.delete("/api/v1/calls/a1b2c3/recording")).status == 202
    response = await api.post(
        "/api/v1/calls/a1b2c3/dtmf", json={"digits": "1*#", "duration_ms": 80}
    )
    assert (await response.json()) == {"label": "a1b2c3", "digits": "1*#"}
    assert (await api.delete("/api/v1/calls/a1b2c3")).status == 204
    response = await api.post(
        "/api/v1/calls",
        json={
            "from": "1001",
            "to": "+4930123",
            "caller_id": "Sales",
            "x_headers": {"X-Crm-Id": "9"},
        },
    )
    assert response.status == 202
    assert response.headers["Location"] == "/api/v1/calls/beef01"
    assert (await response.json()) == {"label": "beef01"}
    assert b2bua.actions == [
        ("transfer", "a1b2c3", "1005"),
        ("start_recording", "a1b2c3"),
        ("stop_recording", "a1b2c3"),
        ("send_dtmf", "a1b2c3", "1*#", 80),
        ("hangup", "a1b2c3"),
        ("originate", "1001", "+4930123", "Sales", {"X-Crm-Id": "9"}),
    ]  # fmt: skip


async def test_b2bua_errors_become_404_422_409(api: Api) -> None:
    connected_call(api)
    b2bua = api.pbx.b2bua
    for error, status in ((LookupError("call ended"), 404), (ValueError("no route to 9"), 422),
                          (RuntimeError("call is not answered yet"), 409)):  # fmt: skip
        b2bua.enable("transfer", error=error)
        response = await api.post("/api/v1/calls/a1b2c3/transfer", json={"target": "9"})
        assert response.status == status
        assert (await response.json(content_type=PROBLEM))["detail"] == str(error)


async def test_a_call_limit_reached_is_503(api: Api) -> None:
    api.pbx.store.add_extension("1001", "long-secret-1")
    api.pbx.b2bua.enable("originate", error=CallLimitReached("Maximum Calls In Progress"))
    response = await api.post("/api/v1/calls", json={"from": "1001", "to": "1002"})
    assert response.status == 503
    body = await response.json(content_type=PROBLEM)
    assert body["detail"] == "Maximum Calls In Progress"


async def test_originate_validation(api: Api) -> None:
    api.pbx.b2bua.enable("originate", result="x")
    response = await api.post(
        "/api/v1/calls", json={"from": "1", "to": "12ab", "x_headers": {"Crm": "1"}, "caller_id": 5}
    )
    body = await response.json(content_type=PROBLEM)
    assert response.status == 422
    assert {e["field"] for e in body["errors"]} == {"from", "to", "x_headers.Crm", "caller_id"}
    response = await api.post("/api/v1/calls", json={"from": "1009", "to": "1002"})
    assert response.status == 404
    assert (await response.json(content_type=PROBLEM))[
        "detail"
    ] == "no extension 1009 to ring first"
    assert api.pbx.b2bua.actions == []


async def test_dtmf_validation(api: Api) -> None:
    connected_call(api)
    api.pbx.b2bua.enable("send_dtmf")
    response = await api.post("/api/v1/calls/a1b2c3/dtmf", json={"digits": "12x", "duration_ms": 5})
    body = await response.json(content_type=PROBLEM)
    assert {e["field"] for e in body["errors"]} == {"digits", "duration_ms"}


async def test_recording_falls_back_to_the_recording_manager(api: Api) -> None:
    connected_call(api)
    done: list[tuple[str, str]] = []

    class Manager:
        def start_recording(self, label: str) -> object:
            done.append(("start", label))
            return object()

        def stop_recording(self, label: str) -> None:
            raise LookupError(f"no recordable call {label}")

    api.pbx.recordings = Manager()  # type: ignore[attr-defined]
    assert (await api.post("/api/v1/calls/a1b2c3/recording")).status == 202
    response = await api.delete("/api/v1/calls/a1b2c3/recording")
    assert response.status == 404
    assert (await response.json(content_type=PROBLEM))["detail"] == "no recordable call a1b2c3"
    assert done == [("start", "a1b2c3")]
