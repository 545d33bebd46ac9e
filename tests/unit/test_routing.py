"""Dial patterns, route choice, permission classes, trunk strategies, caps and refusals."""

from __future__ import annotations

import pytest

from pbx.routing import (
    FORBIDDEN,
    NO_RESOURCE,
    NO_ROUTE,
    SERVICE_DOWN,
    SERVICE_FULL,
    PatternError,
    Refusal,
    RoutePlan,
    Router,
    compile_pattern,
    route_number,
)
from pbx.store.rows import PermissionClass
from pbx.store.trunks import Route, Strategy, Trunk, TrunkStatus

P = PermissionClass


@pytest.mark.parametrize(
    ("pattern", "digits", "expected"),
    [
        ("9|NXXNXXXXXX", "92125551234", "2125551234"),
        ("9|NXXNXXXXXX", "91125551234", None),  # N is 2-9
        ("9|NXXNXXXXXX", "2125551234", None),  # the 9 is required
        ("9|NXXNXXXXXX", "921255512345", None),  # too long
        ("0|Z.", "0301234", "301234"),
        ("0|Z.", "00301234", None),  # Z is 1-9
        ("1+NXXXXXX", "5551234", "15551234"),
        ("0049+0|[1-5,7]XXX", "07123", "00497123"),
        ("0049+0|[1-5,7]XXX", "06123", None),
        ("*X!", "*1", "*1"),
        ("+49.", "+4930123", "+4930123"),
        (r"re:^00(\d{6,})$", "00441234567", "441234567"),
        (r"re:\d{3}", "123", "123"),
        (r"re:\d{3}", "1234", None),
    ],
)
def test_dial_patterns(pattern: str, digits: str, expected: str | None) -> None:
    assert compile_pattern(pattern).rewrite(digits) == expected


@pytest.mark.parametrize("bad", ["9|", "9|NXQ", "[a-z]X", "[]X", "re:(", "x+NXX"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad)


def test_route_strip_and_prepend_apply_after_the_pattern() -> None:
    route = Route("r", ("9|X.",), (), strip=1, prepend="+49")
    assert route_number(route, "9030123") == "+4930123"
    assert route_number(Route("r", ("1XX", "2XX"), ()), "250") == "250"


def trunk(name: str, **kw: object) -> Trunk:
    values: dict[str, object] = {"host": "127.0.0.1", **kw}
    return Trunk(name, **values)  # type: ignore[arg-type]


ALPHA = trunk("alpha", caller_id="+4930111")
BETA = trunk("beta", caller_id="+4930222", max_calls=1)
GAMMA = trunk("gamma", caller_id="+4930333")
TRUNKS = [ALPHA, BETA, GAMMA]
NATIONAL = Route("national", ("0|Z.",), ("alpha", "beta"), permission=P.NATIONAL)
INTL = Route("intl", ("00|Z.",), ("beta", "gamma"), permission=P.INTERNATIONAL)


def names(plan: RoutePlan | Refusal) -> list[str]:
    assert isinstance(plan, RoutePlan), plan
    return [a.trunk.name for a in plan.attempts]


def test_first_permitted_matching_route_wins() -> None:
    router = Router()
    plan = router.plan(P.INTERNATIONAL, "0030123", [INTL, NATIONAL], TRUNKS)
    assert isinstance(plan, RoutePlan)
    assert plan.route == "intl"
    assert [(a.trunk.name, a.number, a.caller_id) for a in plan.attempts] == [
        ("beta", "30123", "+4930222"),
        ("gamma", "30123", "+4930333"),
    ]


def test_permission_classes() -> None:
    router = Router()
    assert router.plan(P.NATIONAL, "0030123", [INTL], TRUNKS) == FORBIDDEN
    assert router.plan(P.INTERNAL, "030123", [NATIONAL], TRUNKS) == FORBIDDEN
    assert router.plan(P.LOCAL, "030123", [NATIONAL], TRUNKS) == FORBIDDEN
    assert names(router.plan(P.NATIONAL, "030123", [NATIONAL], TRUNKS)) == ["alpha", "beta"]
    # the national route does not match 00..., and intl is not permitted: forbidden, not 404
    assert router.plan(P.NATIONAL, "0030123", [INTL, NATIONAL], TRUNKS) == FORBIDDEN
    assert router.plan(P.INTERNATIONAL, "1234", [INTL, NATIONAL], TRUNKS) == NO_ROUTE


def test_route_caller_id_overrides_the_trunks() -> None:
    route = Route("r", ("X.",), ("alpha", "beta"), caller_id="+4930999")
    plan = Router().plan(P.NATIONAL, "123", [route], TRUNKS)
    assert isinstance(plan, RoutePlan)
    assert {a.caller_id for a in plan.attempts} == {"+4930999"}


def test_round_robin_rotates_the_start() -> None:
    router = Router()
    route = Route("rr", ("X.",), ("alpha", "beta", "gamma"), strategy=Strategy.ROUND_ROBIN)
    firsts = [names(router.plan(P.NATIONAL, "123", [route], TRUNKS))[0] for _ in range(4)]
    assert firsts == ["alpha", "beta", "gamma", "alpha"]
    assert names(router.plan(P.NATIONAL, "123", [route], TRUNKS)) == ["beta", "gamma", "alpha"]


def test_least_busy_orders_by_live_calls() -> None:
    router = Router()
    route = Route("lb", ("X.",), ("alpha", "beta", "gamma"), strategy=Strategy.LEAST_BUSY)
    assert router.acquire(ALPHA) and router.acquire(ALPHA) and router.acquire(GAMMA)
    assert names(router.plan(P.NATIONAL, "123", [route], TRUNKS)) == ["beta", "gamma", "alpha"]


def test_concurrency_cap_skips_a_full_trunk_then_refuses_service_full() -> None:
    router = Router()
    route = Route("r", ("X.",), ("beta",))
    assert names(router.plan(P.NATIONAL, "123", [route], TRUNKS)) == ["beta"]
    assert router.acquire(BETA)
    assert not router.acquire(BETA)  # cap of 1
    assert router.plan(P.NATIONAL, "123", [route], TRUNKS) == SERVICE_FULL
    both = Route("r", ("X.",), ("beta", "alpha"))
    assert names(router.plan(P.NATIONAL, "123", [both], TRUNKS)) == ["alpha"]
    router.release("beta")
    assert names(router.plan(P.NATIONAL, "123", [both], TRUNKS)) == ["beta", "alpha"]
    router.release("beta")  # an extra release never goes negative
    assert router.active == {}


def test_down_and_disabled_trunks() -> None:
    router = Router()
    down_a = trunk("alpha", status=TrunkStatus.DOWN)
    down_b = trunk("beta", status=TrunkStatus.DOWN)
    route = Route("r", ("X.",), ("alpha", "beta"))
    assert router.plan(P.NATIONAL, "123", [route], [down_a, down_b]) == SERVICE_DOWN
    assert names(router.plan(P.NATIONAL, "123", [route], [down_a, BETA])) == ["beta"]
    off = trunk("alpha", enabled=False)
    assert router.plan(P.NATIONAL, "123", [Route("r", ("X.",), ("alpha",))], [off]) == NO_RESOURCE
    assert router.plan(P.NATIONAL, "123", [Route("r", ("X.",), ())], TRUNKS) == NO_RESOURCE
    # one down, the other full: the caller hears "Service Full"
    router.acquire(BETA)
    assert router.plan(P.NATIONAL, "123", [route], [down_a, BETA]) == SERVICE_FULL
    assert SERVICE_FULL == Refusal(503, "Service Full")
