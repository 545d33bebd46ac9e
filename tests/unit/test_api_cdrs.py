"""Call history over the HTTP API: filters, keyset pagination, CSV export, recording Range."""

from __future__ import annotations

import csv
import io

from pbx.store import Disposition
from tests.unit.test_api_fakes import WALL, Api, add_cdr, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"


async def test_filters_by_time_caller_callee_and_disposition(api: Api) -> None:
    store = api.pbx.store
    add_cdr(store, WALL - 300, caller="1001", callee="1002")
    add_cdr(store, WALL - 200, caller="1003", callee="1002", disposition=Disposition.BUSY)
    add_cdr(store, WALL - 100, caller="1001", callee="1004", disposition=Disposition.NO_ANSWER)

    async def starts(query: str) -> list[float]:
        response = await api.get(f"/api/v1/cdrs?{query}")
        assert response.status == 200
        return [c["start"] for c in (await response.json())["items"]]

    assert await starts("") == [WALL - 100, WALL - 200, WALL - 300]
    assert await starts("caller=1001") == [WALL - 100, WALL - 300]
    assert await starts("callee=1002") == [WALL - 200, WALL - 300]
    assert await starts("disposition=busy") == [WALL - 200]
    assert await starts("disposition=NO_ANSWER") == [WALL - 100]
    assert await starts(f"since={WALL - 200}&until={WALL - 100}") == [WALL - 200]


async def test_x_header_filter_matches_the_name_in_any_case(api: Api) -> None:
    store = api.pbx.store
    add_cdr(store, WALL - 20, x_headers={"X-Crm-Id": "4711"})
    add_cdr(store, WALL - 10, x_headers={"x-crm-id": "4712"})
    response = await api.get("/api/v1/cdrs?x_header=X-CRM-ID:4711")
    items = (await response.json())["items"]
    assert [c["x_headers"] for c in items] == [{"X-Crm-Id": "4711"}]
    response = await api.get("/api/v1/cdrs?x_header=X-Crm-Id:4712")
    assert [c["start"] for c in (await response.json())["items"]] == [WALL - 10]


async def test_cursor_pages_cover_every_row_once_even_with_equal_starts(api: Api) -> None:
    store = api.pbx.store
    ids = [add_cdr(store, WALL - (i // 2)).id for i in range(7)]  # pairs share a start
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = await (await api.get(f"/api/v1/cdrs?{query}")).json()
        seen += [c["id"] for c in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 7
    # newest first: a later start first, then a higher id on a tie
    assert seen[:2] == [ids[1], ids[0]]


async def test_last_full_page_has_no_cursor(api: Api) -> None:
    for i in range(2):
        add_cdr(api.pbx.store, WALL - i)
    body = await (await api.get("/api/v1/cdrs?limit=2")).json()
    assert len(body["items"]) == 2
    assert body["next_cursor"] is None


async def test_bad_query_values_are_422_naming_the_parameter(api: Api) -> None:
    cases = {
        "cursor=%%%": "cursor",
        "cursor=WzEsMl0x": "cursor",
        "limit=0": "limit",
        "limit=1001": "limit",
        "since=yesterday": "since",
        "x_header=X-Crm-Id": "x_header",
    }
    for query, field in cases.items():
        response = await api.get(f"/api/v1/cdrs?{query}")
        assert response.status == 422, query
        body = await response.json(content_type=PROBLEM)
        assert body["errors"][0]["field"] == field, query
    response = await api.get("/api/v1/cdrs?disposition=maybe")
    assert response.status == 422
    assert "disposition must be one of" in (await response.json(content_type=PROBLEM))["detail"]
    response = await api.get("/api/v1/cdrs?x_header=Crm:1")
    assert response.status == 422
    assert "X- header" in (await response.json(content_type=PROBLEM))["detail"]


async def test_one_cdr_and_unknown_cdr(api: Api) -> None:
    cdr = add_cdr(api.pbx.store, WALL, x_headers={"X-Crm-Id": "1"})
    body = await (await api.get(f"/api/v1/cdrs/{cdr.id}")).json()
    assert body == cdr.to_public_dict()
    for missing in ("999", "abc"):
        response = await api.get(f"/api/v1/cdrs/{missing}")
        assert response.status == 404


async def test_csv_export_streams_every_matching_row(api: Api, monkeypatch: object) -> None:
    import pbx.api.routes_cdrs as routes_cdrs

    monkeypatch.setattr(routes_cdrs, "CSV_PAGE", 2)  # type: ignore[attr-defined]
    store = api.pbx.store
    for i in range(5):
        add_cdr(store, WALL - i, caller="1001", x_headers={"X-Crm-Id": str(i)})
    add_cdr(store, WALL - 10, caller="1009")
    response = await api.get("/api/v1/cdrs.csv?caller=1001")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = await response.text()
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["x_headers"] for r in rows] == [f'{{"X-Crm-Id": "{i}"}}' for i in range(5)]
    assert {r["caller"] for r in rows} == {"1001"}
    assert rows[0]["disposition"] == "ANSWERED"
    assert rows[0]["recording"] == ""


async def test_csv_of_nothing_is_the_header_line(api: Api) -> None:
    text = await (await api.get("/api/v1/cdrs.csv")).text()
    assert text.startswith("id,call_id,caller,callee,start,answer,end,")
    assert text.count("\r\n") == 1


def _recording(api: Api, content: bytes, name: str = "call.wav") -> int:
    folder = api.ctx.recordings_dir / "2027" / "01"
    folder.mkdir(parents=True)
    path = folder / name
    path.write_bytes(content)
    cdr = add_cdr(api.pbx.store, WALL, recording=str(path))
    assert cdr.id is not None
    return cdr.id


async def test_recording_downloads_whole_and_by_range(api: Api) -> None:
    content = bytes(range(256)) * 40
    cdr_id = _recording(api, content)
    url = f"/api/v1/cdrs/{cdr_id}/recording"
    whole = await api.get(url)
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert await whole.read() == content
    part = await api.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(content)}"
    assert await part.read() == content[100:200]
    tail = await api.get(url, headers={"Range": "bytes=-10"})
    assert await tail.read() == content[-10:]
    beyond = await api.get(url, headers={"Range": f"bytes={len(content) + 5}-"})
    assert beyond.status == 416


async def test_recording_relative_path_is_under_the_data_dir(api: Api) -> None:
    folder = api.ctx.recordings_dir
    folder.mkdir()
    (folder / "r.wav").write_bytes(b"RIFFdata")
    cdr = add_cdr(api.pbx.store, WALL, recording="recordings/r.wav")
    assert await (await api.get(f"/api/v1/cdrs/{cdr.id}/recording")).read() == b"RIFFdata"


async def test_recording_404_when_absent_gone_or_outside_recordings(api: Api) -> None:
    plain = add_cdr(api.pbx.store, WALL)
    response = await api.get(f"/api/v1/cdrs/{plain.id}/recording")
    assert response.status == 404
    assert (await response.json(content_type=PROBLEM))["detail"].endswith("was not recorded")
    gone = add_cdr(api.pbx.store, WALL, recording=str(api.ctx.recordings_dir / "gone.wav"))
    response = await api.get(f"/api/v1/cdrs/{gone.id}/recording")
    assert response.status == 404
    assert "no recording file" in (await response.json(content_type=PROBLEM))["detail"]
    secret = api.ctx.data_dir / "deskpbx.db"
    outside = add_cdr(api.pbx.store, WALL, recording=str(secret))
    assert (await api.get(f"/api/v1/cdrs/{outside.id}/recording")).status == 404
    sneaky = add_cdr(api.pbx.store, WALL, recording="recordings/../deskpbx.db")
    assert (await api.get(f"/api/v1/cdrs/{sneaky.id}/recording")).status == 404


async def test_x_header_values_with_like_wildcards_quotes_and_unicode(api: Api) -> None:
    values = ["50%_off", 'say "hi"', "Müller", "back\\slash", "5000ff"]
    for i, value in enumerate(values):
        add_cdr(api.pbx.store, WALL - i, x_headers={"X-Tag": value})
    for value in values:
        response = await api.get("/api/v1/cdrs", params={"x_header": f"X-Tag:{value}"})
        items = (await response.json())["items"]
        assert [c["x_headers"]["X-Tag"] for c in items] == [value], value
    response = await api.get("/api/v1/cdrs", params={"x_header": "X-Tag:50%"})
    assert (await response.json())["items"] == []
