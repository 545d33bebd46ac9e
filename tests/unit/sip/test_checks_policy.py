"""check_request_against with a policy built once (uas_policy) answers exactly as
check_request does with the same arguments: the server builds its policy at start-up."""

from __future__ import annotations

import pytest

from pbx.sip.checks import check_request, check_request_against, uas_policy
from pbx.sip.message import Request
from tests.unit.sip.test_checks import ALLOWED, SDP, request

CASES: list[tuple[str, Request]] = [
    ("good", request(body=SDP)),
    ("register", request("REGISTER")),
    ("missing-callid", request(drop=("Call-ID",))),
    ("cseq-mismatch", request(cseq_method="BYE")),
    ("unknown-method", request("FOO", cseq_method="FOO")),
    ("disallowed", request("SUBSCRIBE")),
    ("scheme", request(uri="mailto:a@example.com")),
    ("zero-hops", Request("INVITE", "sip:100@pbx.example.com", [
        (n, "0" if n == "Max-Forwards" else v) for n, v in request().headers])),
    ("require", request(extra=(("Require", "foo, timer"),))),
    ("body-type", Request("MESSAGE", "sip:100@pbx.example.com", [
        ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKp1"), ("From", "<sip:2@x>;tag=1"),
        ("To", "<sip:1@x>"), ("Call-ID", "p1"), ("CSeq", "1 MESSAGE"),
        ("Content-Type", "text/plain")], b"hi")),
]  # fmt: skip


def _shape(response: object) -> object:
    if response is None:
        return None
    headers = [(n, v) for n, v in response.headers if n != "To"]  # type: ignore[attr-defined]
    return response.status, response.reason, headers  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "req"), CASES, ids=[c[0] for c in CASES])
def test_same_answer_as_check_request(name: str, req: Request) -> None:
    kwargs = dict(
        allowed_methods=(*ALLOWED, "MESSAGE"), accepted_content_types=("application/sdp",),
        supported_extensions=("timer",),
    )  # fmt: skip
    expected = check_request(req, **kwargs)  # type: ignore[arg-type]
    got = check_request_against(req, uas_policy(**kwargs))  # type: ignore[arg-type]
    assert _shape(got) == _shape(expected)
    if name in ("good", "register"):
        assert got is None
    else:
        assert got is not None and got.status >= 400


def test_answers_of_a_shared_policy_draw_fresh_to_tags() -> None:
    policy = uas_policy(allowed_methods=ALLOWED)
    assert policy.to_tag is None
    bad = request(drop=("Call-ID",))
    first, second = (check_request_against(bad, policy) for _ in range(2))
    assert first is not None and second is not None
    assert first.to_tag and second.to_tag and first.to_tag != second.to_tag


def test_policy_normalizes_like_check_request() -> None:
    policy = uas_policy(
        allowed_methods=("invite", "Bye"), accepted_content_types=("APPLICATION/SDP",)
    )
    assert policy.allowed_methods == frozenset({"INVITE", "BYE"})
    assert policy.accepted_content_types == frozenset({"application/sdp"})
    assert policy.local_schemes == frozenset({"sip", "sips", "tel"})
    assert policy.forwards is True
