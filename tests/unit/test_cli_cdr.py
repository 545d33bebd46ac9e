"""`deskpbx cdr` through pbx.cli.main, checking exact output and exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx.cli import main
from pbx.commands.cdr import format_seconds
from pbx.store import Cdr, Disposition, HangupSide, Store

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


pytestmark = pytest.mark.usefixtures("local_time_utc")


def run(tmp_path: Path, *argv: str) -> int:
    return main(["--data-dir", str(tmp_path), "cdr", *argv])


def _populate(tmp_path: Path) -> None:
    calls = [
        ("c1", "201", "202", T0, T0 + 4.2, T0 + 65.6, Disposition.ANSWERED, 200, "OK"),
        ("c2", "202", "201", T0 + 120, None, T0 + 150, Disposition.NO_ANSWER, 480, "No Answer"),
        ("c3", "201", "0612345678", T0 + 300, None, T0 + 301, Disposition.BUSY, 486, "Busy Here"),
        ("c4", "203", "201", T0 + 3600, T0 + 3610, T0 + 7333, Disposition.ANSWERED, 200, "OK"),
    ]
    with Store.in_dir(tmp_path) as store:
        for call_id, caller, callee, start, answer, end, disposition, code, reason in calls:
            store.add_cdr(
                Cdr.from_times(
                    call_id=call_id, caller=caller, callee=callee, start=start, answer=answer,
                    end=end, disposition=disposition, sip_code=code, sip_reason=reason,
                    hangup_side=HangupSide.CALLEE, x_headers={"X-Ticket": call_id},
                )
            )  # fmt: skip


def test_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path) == 0
    assert capsys.readouterr() == ("no calls recorded\n", "")
    assert run(tmp_path, "--json") == 0
    assert capsys.readouterr().out == "[]\n"


def test_table_newest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path) == 0
    assert capsys.readouterr().out == (
        "TIME                 CALLER  CALLEE      DISPOSITION  CODE  DURATION  BILLSEC\n"
        "2027-01-15 09:00:00  203     201         ANSWERED     200   1:02:13   1:02:03\n"
        "2027-01-15 08:05:00  201     0612345678  BUSY         486   0:01      0:00\n"
        "2027-01-15 08:02:00  202     201         NO ANSWER    480   0:30      0:00\n"
        "2027-01-15 08:00:00  201     202         ANSWERED     200   1:06      1:01\n"
    )


def test_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "--limit", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("2027-01-15 09:00:00  203")


def test_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "--json", "--caller", "201") == 0
    assert [c["call_id"] for c in json.loads(capsys.readouterr().out)] == ["c3", "c1"]
    assert run(tmp_path, "--json", "--callee", "201", "--disposition", "no_answer") == 0
    assert [c["call_id"] for c in json.loads(capsys.readouterr().out)] == ["c2"]


def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "--json", "--limit", "2") == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["call_id"] for r in records] == ["c4", "c3"]
    assert records[1] == {
        "id": 3, "call_id": "c3", "caller": "201", "callee": "0612345678",
        "start": T0 + 300, "answer": None, "end": T0 + 301, "duration": 1.0, "billsec": 0.0,
        "disposition": "BUSY", "sip_code": 486, "sip_reason": "Busy Here",
        "hangup_side": "callee", "x_headers": {"X-Ticket": "c3"}, "recording": None,
        "media_stats": None,
    }  # fmt: skip


@pytest.mark.parametrize("limit", ["0", "-3", "abc", "1.5", ""])
def test_bad_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: str) -> None:
    assert run(tmp_path, "--limit", limit) == 2
    err = f"deskpbx: --limit must be a positive integer, not {limit!r}\n"
    assert capsys.readouterr() == ("", err)


def test_limit_above_maximum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "--limit", "10001") == 2
    assert capsys.readouterr().err == "deskpbx: limit must be between 1 and 10000\n"


def test_bad_disposition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "--disposition", "hung") == 2
    assert capsys.readouterr().err == (
        "deskpbx: disposition must be one of: ANSWERED, BUSY, NO ANSWER, FAILED, CANCELLED "
        "(not 'HUNG')\n"
    )


def test_unwritable_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--data-dir", str(blocker), "cdr"]) == 2
    assert capsys.readouterr().err.startswith(f"deskpbx: cannot use data directory {blocker}")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (0.4, "0:00"), (59.6, "1:00"), (61, "1:01"), (3599, "59:59"),
     (3600, "1:00:00"), (36_000 + 62, "10:01:02")],
)  # fmt: skip
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_since_and_until_in_local_time_or_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(tmp_path)  # local time is UTC here: T0 is 2027-01-15 08:00:00
    assert (
        run(tmp_path, "--json", "--since", "2027-01-15 08:02", "--until", "2027-01-15T09:00") == 0
    )
    assert [c["call_id"] for c in json.loads(capsys.readouterr().out)] == ["c3", "c2"]
    assert run(tmp_path, "--json", "--since", str(T0 + 3600)) == 0
    assert [c["call_id"] for c in json.loads(capsys.readouterr().out)] == ["c4"]
    assert run(tmp_path, "--json", "--until", "2027-01-15") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(tmp_path, "--since", "last tuesday") == 2
    assert capsys.readouterr().err == (
        "deskpbx: --since 'last tuesday': use YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]' or epoch "
        "seconds\n"
    )


def test_csv_is_the_apis_export_of_every_matching_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv
    import io

    from pbx.store import views

    _populate(tmp_path)
    monkeypatch.setattr(views, "CSV_PAGE", 3)  # 4 calls: two pages
    assert run(tmp_path, "--csv") == 0
    out = capsys.readouterr().out
    assert "\r\n" in out  # RFC 4180 line ends
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(views.CSV_COLUMNS)
    assert [r["call_id"] for r in rows] == ["c4", "c3", "c2", "c1"]  # all, newest first
    assert json.loads(rows[3]["x_headers"]) == {"X-Ticket": "c1"}
    assert rows[2]["answer"] == ""  # NULL: empty
    assert run(tmp_path, "--csv", "--caller", "201", "--limit", "1") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["call_id"] for r in rows] == ["c3"]
    assert run(tmp_path, "--csv", "--json") == 2
    assert capsys.readouterr().err == "deskpbx: --json and --csv: choose one\n"
