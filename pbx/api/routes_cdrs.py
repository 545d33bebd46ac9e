"""Call history: CDR query with filters and cursor pagination, CSV export, recording download.

Pages are newest first; `next_cursor` is an opaque token (base64url of the last
row's (start, id)) to pass back as `cursor`, null on the last page. The CSV
export takes the same filters and streams every matching row (up to
CSV_MAX_ROWS) in store pages, off the event loop. Recordings are served with
HTTP Range support (RFC 9110 §14) by aiohttp's FileResponse, only from
<data dir>/recordings, 404 when the CDR has none or the file is gone.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from pbx.api.body import query_float, query_int
from pbx.api.context import ApiContext, context
from pbx.api.problems import Problem, field_error
from pbx.store import Cdr
from pbx.store.api import MAX_PAGE
from pbx.store.views import CSV_COLUMNS, CSV_MAX_ROWS, CSV_PAGE, cdr_csv_row

routes = web.RouteTableDef()

DEFAULT_PAGE = 50
RECORDING_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}


def encode_cursor(cdr: Cdr) -> str:
    raw = json.dumps([cdr.start, cdr.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        start, cdr_id = json.loads(raw)
        if isinstance(start, bool) or isinstance(cdr_id, bool):
            raise ValueError
        return float(start), int(cdr_id)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise field_error(
            "cursor", "not a cursor from this API: pass next_cursor of the previous page"
        ) from None


def filters(request: web.Request) -> dict[str, Any]:
    """The filters shared by the JSON query and the CSV export."""
    query = request.query
    found: dict[str, Any] = {
        "since": query_float(request, "since"),
        "until": query_float(request, "until"),
        "caller": query.get("caller"),
        "callee": query.get("callee"),
    }
    disposition = query.get("disposition")
    if disposition is not None:
        found["disposition"] = disposition.upper().replace("_", " ")
    header = query.get("x_header")
    if header is not None:
        name, sep, value = header.partition(":")
        if not sep:
            raise field_error("x_header", "use NAME:VALUE, e.g. X-Crm-Id:4711")
        found["x_header"] = (name.strip(), value.strip())
    return found


def _page_response(cdrs: list[Cdr], limit: int) -> dict[str, Any]:
    more = len(cdrs) > limit
    page = cdrs[:limit]
    return {
        "items": [c.to_public_dict() for c in page],
        "next_cursor": encode_cursor(page[-1]) if more and page else None,
    }


@routes.get("/api/v1/cdrs")
async def list_cdrs(request: web.Request) -> web.Response:
    ctx = context(request)
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = request.query.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    cdrs = ctx.store.cdr_page(limit=limit + 1, before=before, **filters(request))
    return web.json_response(_page_response(cdrs, limit))


@routes.get("/api/v1/cdrs.csv")
async def export_cdrs(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    wanted = filters(request)
    first = await asyncio.to_thread(ctx.store.cdr_page, limit=CSV_PAGE, **wanted)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="cdrs.csv"',
        }
    )
    await response.prepare(request)
    page, sent = first, 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 §2
    writer.writerow(CSV_COLUMNS)
    while True:
        for cdr in page:
            writer.writerow(cdr_csv_row(cdr))
        await response.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
        sent += len(page)
        if len(page) < CSV_PAGE or sent >= CSV_MAX_ROWS:
            break
        last = page[-1]
        assert last.id is not None
        page = await asyncio.to_thread(
            ctx.store.cdr_page, limit=CSV_PAGE, before=(last.start, last.id), **wanted
        )
    await response.write_eof()
    return response


def _cdr(ctx: ApiContext, request: web.Request) -> Cdr:
    text = request.match_info["cdr_id"]
    cdr = ctx.store.get_cdr(int(text)) if text.isascii() and text.isdigit() else None
    if cdr is None:
        raise Problem(404, f"no CDR {text}: list them with GET /api/v1/cdrs")
    return cdr


@routes.get("/api/v1/cdrs/{cdr_id}")
async def get_cdr(request: web.Request) -> web.Response:
    return web.json_response(_cdr(context(request), request).to_public_dict())


def recording_path(ctx: ApiContext, cdr: Cdr) -> Path | None:
    """The CDR's recording if it is a file inside <data dir>/recordings, else None."""
    if not cdr.recording:
        return None
    base = ctx.recordings_dir.resolve()
    path = Path(cdr.recording)
    path = (path if path.is_absolute() else ctx.data_dir / path).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


@routes.get("/api/v1/cdrs/{cdr_id}/recording")
async def get_recording(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    cdr = _cdr(ctx, request)
    path = recording_path(ctx, cdr)
    if path is None:
        detail = "was not recorded" if not cdr.recording else "has no recording file any more"
        raise Problem(404, f"call {cdr.id} {detail}")
    content_type = RECORDING_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{path.name}"',
        },
    )
