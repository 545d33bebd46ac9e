"""Bans after repeated wrong passwords (pbx.auth_ban), with a fake clock."""

from __future__ import annotations

import pytest

from pbx import auth_ban
from pbx.auth_ban import AuthBans

SCANNER = "203.0.113.9"


def test_the_nth_failure_within_the_window_bans_for_the_set_time() -> None:
    bans = AuthBans(after=3, window=60, seconds=600)
    assert [bans.failed(SCANNER, t) for t in (0.0, 10.0, 20.0)] == [False, False, True]
    assert bans.banned(SCANNER, 20.0) and bans.banned(SCANNER, 619.9)
    assert not bans.banned(SCANNER, 620.0)  # ended by itself
    assert bans.active(620.0) == {} and bans.bans == 1


def test_failures_spread_wider_than_the_window_do_not_ban() -> None:
    bans = AuthBans(after=3, window=60, seconds=600)
    assert not any(bans.failed(SCANNER, t) for t in (0.0, 40.0, 80.0, 120.0, 160.0))
    assert not bans.banned(SCANNER, 160.0)
    assert bans.failed(SCANNER, 170.0) and bans.failed("198.51.100.1", 0.0) is False


def test_drop_counts_what_it_drops_and_other_addresses_pass() -> None:
    bans = AuthBans(after=1, window=60, seconds=30)
    assert not bans.drop(SCANNER, 0.0)  # nobody banned yet
    bans.failed(SCANNER, 0.0)
    assert bans.drop(SCANNER, 1.0) and bans.drop(SCANNER, 2.0)
    assert not bans.drop("198.51.100.1", 2.0)
    assert bans.dropped == 2
    assert bans.stats(5.0) == {"after": 1, "window": 60, "seconds": 30, "bans": 1,
                               "dropped": 2, "banned": [SCANNER]}  # fmt: skip


def test_loopback_is_exempt_by_default_and_exemptions_can_be_changed() -> None:
    bans = AuthBans(after=1)
    assert not bans.failed("127.0.0.1", 0.0) and not bans.failed("::1", 0.0)
    assert not bans.banned("127.0.0.1", 0.0)
    strict = AuthBans(after=1, exempt=())
    assert strict.failed("127.0.0.1", 0.0) and strict.banned("127.0.0.1", 1.0)


def test_zero_turns_bans_off() -> None:
    bans = AuthBans(after=0)
    assert not bans
    assert not any(bans.failed(SCANNER, float(t)) for t in range(100))
    assert bans.active(100.0) == {}


def test_a_banned_address_starts_counting_afresh_after_its_ban() -> None:
    bans = AuthBans(after=2, window=60, seconds=10)
    bans.failed(SCANNER, 0.0)
    assert bans.failed(SCANNER, 1.0)
    assert not bans.failed(SCANNER, 5.0)  # while banned nothing is counted
    assert not bans.failed(SCANNER, 12.0)  # the first failure of a new count
    assert bans.failed(SCANNER, 13.0)


def test_the_addresses_followed_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_ban, "MAX_TRACKED", 100)
    bans = AuthBans(after=2)
    for n in range(1000):
        bans.failed(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(bans._failures) == 100
    assert bans.failed("10.0.3.231", 1.0)  # among the latest 100: its second failure bans


@pytest.mark.parametrize(("after", "window", "seconds"), [(-1, 60, 600), (3, 0, 600), (3, 60, 0)])
def test_impossible_settings_are_refused(after: int, window: float, seconds: float) -> None:
    with pytest.raises(ValueError):
        AuthBans(after, window, seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1,::1", ("127.0.0.1", "::1")),
        (" 198.51.100.7 , [2001:DB8::1] ", ("198.51.100.7", "2001:db8::1")),  # as sources read
        ("", ()),
    ],
)
def test_serve_reads_the_exempt_addresses(text: str, expected: tuple[str, ...]) -> None:
    from pbx.commands.serve import ban_exempt

    assert ban_exempt(text) == expected


def test_serve_refuses_an_exempt_name() -> None:
    from pbx.commands import UsageError
    from pbx.commands.serve import ban_exempt

    with pytest.raises(UsageError, match="'office' is not an IP address"):
        ban_exempt("127.0.0.1,office")


def test_a_lifted_ban_ends_now_and_its_count_starts_afresh() -> None:
    bans = AuthBans(after=2, window=60, seconds=600)
    bans.failed(SCANNER, 0.0)
    bans.failed(SCANNER, 1.0)
    assert bans.lift(SCANNER) and not bans.banned(SCANNER, 2.0)
    assert not bans.lift(SCANNER)  # nothing left to lift
    assert not bans.failed(SCANNER, 3.0)  # one failure of a new count


def test_only_guesses_count_among_failed_checks() -> None:
    from pbx.sip.digest_server import AuthStatus

    bans = AuthBans(after=2)
    for status in (AuthStatus.STALE, AuthStatus.REPLAY, AuthStatus.INVALID_NONCE):
        assert not bans.record(status, SCANNER, 0.0)
    assert not bans.record(AuthStatus.UNKNOWN_USER, SCANNER, 1.0)
    assert bans.record(AuthStatus.BAD_RESPONSE, SCANNER, 2.0)  # the second guess bans


def test_bans_and_lifts_are_told_for_the_database() -> None:
    bans = AuthBans(after=2, window=60.0, seconds=600.0, exempt=())
    told: list[tuple[str, float | None]] = []
    bans.on_change = lambda host, until: told.append((host, until))
    bans.failed("192.0.2.5", 10.0)
    bans.failed("192.0.2.5", 11.0)
    assert told == [("192.0.2.5", 611.0)]
    assert bans.lift("192.0.2.5") and told[-1] == ("192.0.2.5", None)
    assert not bans.lift("192.0.2.5") and len(told) == 2  # nothing to lift: nothing told


def test_restored_bans_hold_and_the_database_can_lift_them() -> None:
    bans = AuthBans(after=2, window=60.0, seconds=600.0, exempt=("127.0.0.1",))
    bans.restore("192.0.2.6", 300.0, now=50.0)
    bans.restore("192.0.2.7", 300.0, now=50.0)
    bans.restore("192.0.2.8", -1.0, now=50.0)  # already over
    bans.restore("127.0.0.1", 300.0, now=50.0)  # exempt since
    assert sorted(bans.active(60.0)) == ["192.0.2.6", "192.0.2.7"]
    assert bans.drop("192.0.2.6", 349.0) and not bans.drop("192.0.2.6", 351.0)
    assert bans.keep_only(["192.0.2.6"]) == ["192.0.2.7"]  # `deskpbx ban lift` elsewhere
    assert not bans.drop("192.0.2.7", 60.0)


def test_the_database_keeps_bans_until_they_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pbx.store import Store

    with Store.in_dir(tmp_path) as store:
        store.save_ban("192.0.2.5", until=1600.0, now=1000.0)
        store.save_ban("192.0.2.6", until=1100.0, now=1000.0)
        store.save_ban("192.0.2.6", until=1700.0, now=1050.0)  # banned again: longer
        assert store.active_bans(1200.0) == {"192.0.2.5": 1600.0, "192.0.2.6": 1700.0}
        assert store.active_bans(1650.0) == {"192.0.2.6": 1700.0}  # the ended one is gone
        assert store.delete_ban("192.0.2.6") and not store.delete_ban("192.0.2.6")
        assert store.active_bans(1650.0) == {}
