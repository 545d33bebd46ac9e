"""Where a finished call's CDR goes: unrecorded calls join the Store's batch, recorded ones
are written at once (after a SIGKILL only a recording without its CDR is recovered)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbx.b2bua import B2bua
from pbx.config import PbxConfig
from pbx.store import Disposition, Store
from tests.unit.test_b2bua_wiring import WireEndpoint
from tests.unit.test_call import make_call


def _finish_calls(tmp_path: Path, recordings: list[str | None]) -> tuple[list[str], list[str]]:
    """Finish one call per entry; the call ids another connection sees before and after
    the B2BUA's Store closes."""

    async def scenario() -> tuple[list[str], list[str]]:
        store = Store.in_dir(tmp_path, cdr_batch=3600.0)  # the timer never writes here
        b2bua = B2bua(WireEndpoint(), store, None, None, None,  # type: ignore[arg-type]
                      PbxConfig(data_dir=tmp_path), wall=lambda: 1010.0)  # fmt: skip
        for n, recording in enumerate(recordings):
            call = make_call(label=f"label-{n}", recording=recording)
            call.a_invite.headers.set("Call-ID", f"call-{n}@test")
            call.disposition = Disposition.ANSWERED
            b2bua.calls[call.label] = call
            b2bua._finish(call)
        with Store.in_dir(tmp_path) as other:
            before = sorted(c.call_id for c in other.query_cdrs())
            store.close()
            after = sorted(c.call_id for c in other.query_cdrs())
        return before, after

    return asyncio.run(scenario())


def test_an_unrecorded_calls_cdr_waits_for_the_batch_and_is_written_on_close(
    tmp_path: Path,
) -> None:
    before, after = _finish_calls(tmp_path, [None, None])
    assert before == []
    assert after == ["call-0@test", "call-1@test"]


def test_a_recorded_calls_cdr_is_written_at_once(tmp_path: Path) -> None:
    before, after = _finish_calls(tmp_path, [None, "/data/recordings/call-1.wav"])
    # The recorded call's write takes the queued one along, in order.
    assert before == ["call-0@test", "call-1@test"]
    assert after == before


def test_a_recorded_call_alone_is_written_at_once(tmp_path: Path) -> None:
    before, _ = _finish_calls(tmp_path, ["/data/recordings/call-0.wav"])
    assert before == ["call-0@test"]
