"""The UAS's first look at a request: the checks of RFC 3261 8.2 and RFC 4475 3.3.

`check_request()` runs before any core logic (registrar, B2BUA, OPTIONS) sees
a request and returns the error response to send, or None when the request
may be processed.  The checks run in the order of RFC 3261 8.2, each one a
row of `_CHECKS`:

* mandatory header fields (8.1.1; RFC 4475 3.3.1 insuf) -> 400 naming them.
  Max-Forwards is not demanded: RFC 2543 peers omit it and RFC 4475 3.4.1
  (inv2543) asks us to process such requests; its absence counts as 70;
* the parser's `validate()` (every understood header parses, single-value
  fields appear once (3.3.8 multi01), CSeq method matches) -> 400 with its reason;
* more than one Content-Length (3.3.9 mcl01) and more than one Contact in an
  INVITE (8.1.1.8) -> 400;
* the method (8.2.1) -> 405 with Allow, or 501 for a method we do not know;
* the Request-URI scheme (8.2.2.1; 3.3.2 unkscm, 3.3.3 novelsc) -> 416.
  Unknown schemes in From/To/Contact are not our business here (3.3.4 unksm2);
  the registrar applies its own rule with `check_register()`;
* Max-Forwards 0 (3.3.11 zeromf) -> 483 for a request the PBX would relay to
  another leg: a B2BUA passes Max-Forwards on and stops at zero like a proxy
  (RFC 7332 3, RFC 3261 16.3 step 2).  OPTIONS and REGISTER are answered by
  us, and a request that ends here (`forwards=False`, e.g. at the desktop UA)
  is processed "as if the value were still positive", as RFC 4475 asks of an
  endpoint;
* Require (8.2.2.3; 3.3.5 bext01) -> 420 with Unsupported listing the unknown
  option tags; Proxy-Require is for proxies and ignored; never for ACK/CANCEL;
* the body (8.2.3; 3.3.6 invut) -> 415 with Accept (or Accept-Encoding); a body
  part with Content-Disposition handling=optional may be ignored instead;
* the Accept of a request whose answer must carry SDP (21.4.7; 3.3.15 sdp01:
  Accept without application/sdp) -> 406.

An ACK is never answered (RFC 3261 17): whatever `check_request()` returns for
an ACK is a reason to drop it, not a response to send.

`check_response()` says whether a UA must drop a response (8.1.3.3, 18.1.2;
3.3.10 bcast: two Via values, one of them a broadcast address).
`unknown_auth_schemes()` lists credentials in schemes other than Digest (3.3.7
regaut01) so that the registrar answers 401 with a fresh challenge instead of
failing on them.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pbx.sip.errors import ParseError
from pbx.sip.message import Request, Response
from pbx.sip.uri import TelUri, Uri, parse_name_addr
from pbx.sip.validate import validate

__all__ = [
    "KNOWN_METHODS",
    "MANDATORY_HEADERS",
    "UasPolicy",
    "check_register",
    "check_request",
    "check_request_against",
    "check_response",
    "uas_policy",
    "unknown_auth_schemes",
    "uri_scheme",
]

MANDATORY_HEADERS = ("Via", "To", "From", "Call-ID", "CSeq")
KNOWN_METHODS = frozenset(
    "INVITE ACK BYE CANCEL OPTIONS REGISTER PRACK SUBSCRIBE NOTIFY PUBLISH INFO REFER MESSAGE "
    "UPDATE".split()
)
# Requests the PBX answers itself even at Max-Forwards 0 (RFC 3261 16.3 step 2, 11).
LOCAL_AT_ZERO_HOPS = frozenset({"OPTIONS", "REGISTER"})
# Requests whose success response must carry a body of one of `response_content_types`.
ANSWERED_WITH_BODY = frozenset({"INVITE"})
NO_REQUIRE_CHECK = frozenset({"ACK", "CANCEL"})  # RFC 3261 8.2.2.3
IDENTITY_ENCODINGS = frozenset({"", "identity"})


@dataclass(frozen=True, slots=True)
class UasPolicy:
    """What this UAS supports; lower-case types and schemes, upper-case methods."""

    allowed_methods: frozenset[str]
    supported_extensions: frozenset[str]
    accepted_content_types: frozenset[str]
    local_schemes: frozenset[str]
    response_content_types: frozenset[str]
    to_tag: str | None
    forwards: bool = True


@functools.lru_cache(maxsize=64)
def _policy(
    allowed_methods: tuple[str, ...],
    supported_extensions: tuple[str, ...],
    accepted_content_types: tuple[str, ...],
    local_schemes: tuple[str, ...],
    response_content_types: tuple[str, ...],
    forwards: bool,
) -> UasPolicy:
    """The policy of one set of arguments, built once: a server passes the same ones with
    every request. Its to_tag is None, so each reply draws a fresh one (_reply)."""
    return UasPolicy(
        allowed_methods=frozenset(m.upper() for m in allowed_methods),
        supported_extensions=frozenset(e.lower() for e in supported_extensions),
        accepted_content_types=frozenset(t.lower() for t in accepted_content_types),
        local_schemes=frozenset(s.lower() for s in local_schemes),
        response_content_types=frozenset(t.lower() for t in response_content_types),
        to_tag=None,
        forwards=forwards,
    )


Check = Callable[[Request, UasPolicy], Response | None]


def check_request(
    request: Request,
    *,
    allowed_methods: Iterable[str],
    supported_extensions: Iterable[str] = (),
    accepted_content_types: Iterable[str] = ("application/sdp",),
    local_schemes: Iterable[str] = ("sip", "sips", "tel"),
    response_content_types: Iterable[str] = ("application/sdp",),
    to_tag: str | None = None,
    forwards: bool = True,
) -> Response | None:
    """The error response RFC 3261 8.2 requires for `request`, or None to go on.

    `forwards` is False when the request ends at this UA rather than being
    relayed to another leg (only the Max-Forwards check depends on it).

    `to_tag` goes into the To of the error response when the request has no To
    tag (8.2.6.2); a random one is made when not given.
    """
    policy = uas_policy(
        allowed_methods=allowed_methods,
        supported_extensions=supported_extensions,
        accepted_content_types=accepted_content_types,
        local_schemes=local_schemes,
        response_content_types=response_content_types,
        forwards=forwards,
    )
    if to_tag is not None:
        policy = dataclasses.replace(policy, to_tag=to_tag)
    return check_request_against(request, policy)


def uas_policy(
    *,
    allowed_methods: Iterable[str],
    supported_extensions: Iterable[str] = (),
    accepted_content_types: Iterable[str] = ("application/sdp",),
    local_schemes: Iterable[str] = ("sip", "sips", "tel"),
    response_content_types: Iterable[str] = ("application/sdp",),
    forwards: bool = True,
) -> UasPolicy:
    """The policy check_request builds from these arguments (same defaults), for a server
    that asks the same question of every request and builds it once (see
    check_request_against). Its to_tag is None: every reply draws a fresh tag."""
    return _policy(
        tuple(allowed_methods),
        tuple(supported_extensions),
        tuple(accepted_content_types),
        tuple(local_schemes),
        tuple(response_content_types),
        forwards,
    )


def check_request_against(request: Request, policy: UasPolicy) -> Response | None:
    """check_request with the policy built already (uas_policy): the rows of _CHECKS in
    order, the first answer wins; a ParseError becomes its status and reason (8.2)."""
    for check in _CHECKS:
        try:
            response = check(request, policy)
        except ParseError as exc:
            response = _reply(request, policy, exc.status, exc.reason)
        if response is not None:
            return response
    return None


def _reply(
    request: Request,
    policy: UasPolicy,
    status: int,
    reason: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """An error response (8.2.6): every Via, the first From, To, Call-ID and CSeq.

    Built by hand rather than with make_response() so that a request with
    repeated or malformed fields (multi01) still gets one clean copy of each,
    and To gains our tag when it has none (8.2.6.2).
    """
    items: list[tuple[str, str]] = []
    seen: set[str] = set()
    to_tag = policy.to_tag or secrets.token_hex(6)
    for name, value in request.headers:
        if name == "Via":
            items.append((name, value))
        elif name in MANDATORY_HEADERS and name not in seen:
            seen.add(name)
            items.append((name, _tagged(value, to_tag) if name == "To" else value))
    return Response(status, reason, [*items, *headers])


def _tagged(to_value: str, tag: str) -> str:
    try:
        has_tag = parse_name_addr(to_value).tag is not None
    except ParseError:
        return to_value
    return to_value if has_tag else f"{to_value};tag={tag}"


def uri_scheme(uri: Uri) -> str:
    """The lower-case scheme of any parsed URI ("tel" for a TelUri)."""
    if isinstance(uri, TelUri):
        return "tel"
    return uri.scheme.lower()


def _check_mandatory(request: Request, policy: UasPolicy) -> Response | None:
    counts = request.headers.name_counts()  # canonical names, as MANDATORY_HEADERS spells them
    missing = [name for name in MANDATORY_HEADERS if name not in counts]
    if not missing:
        return None
    return _reply(request, policy, 400, "Missing " + ", ".join(missing))


def _check_valid(request: Request, policy: UasPolicy) -> Response | None:
    validate(request)  # ParseError -> 400 with the parser's reason (check_request)
    return None


def _check_multiples(request: Request, policy: UasPolicy) -> Response | None:
    if request.headers.count("Content-Length") > 1:
        return _reply(request, policy, 400, "Multiple Content-Length values")
    if request.method == "INVITE" and len(request.contacts) > 1:
        return _reply(request, policy, 400, "Multiple Contact values")
    return None


def _check_method(request: Request, policy: UasPolicy) -> Response | None:
    if request.method in policy.allowed_methods:
        return None
    status = 405 if request.method in KNOWN_METHODS else 501
    allow = ", ".join(sorted(policy.allowed_methods))
    return _reply(request, policy, status, None, [("Allow", allow)])


def _check_scheme(request: Request, policy: UasPolicy) -> Response | None:
    if uri_scheme(request.uri) in policy.local_schemes:
        return None
    return _reply(request, policy, 416)


def _check_max_forwards(request: Request, policy: UasPolicy) -> Response | None:
    if not policy.forwards or request.method in LOCAL_AT_ZERO_HOPS:
        return None
    if request.max_forwards == 0:
        return _reply(request, policy, 483)
    return None


def _check_require(request: Request, policy: UasPolicy) -> Response | None:
    if request.method in NO_REQUIRE_CHECK or "Require" not in request.headers.name_counts():
        return None
    unknown = [
        tag
        for tag in request.headers.getall("Require")
        if tag and tag.lower() not in policy.supported_extensions
    ]
    if not unknown:
        return None
    return _reply(request, policy, 420, None, [("Unsupported", ", ".join(unknown))])


def _check_body(request: Request, policy: UasPolicy) -> Response | None:
    if not request.body or _optional_body(request):
        return None
    encoding = (request.headers.get("Content-Encoding") or "").strip().lower()
    if encoding not in IDENTITY_ENCODINGS:
        return _reply(request, policy, 415, None, [("Accept-Encoding", "identity")])
    content_type = request.content_type
    if content_type is not None and content_type in policy.accepted_content_types:
        return None
    accept = ", ".join(sorted(policy.accepted_content_types))
    return _reply(request, policy, 415, None, [("Accept", accept)])


def _optional_body(request: Request) -> bool:
    """Content-Disposition handling=optional: an unknown body may be ignored (20.11)."""
    disposition = (request.headers.get("Content-Disposition") or "").lower().replace(" ", "")
    return ";handling=optional" in disposition


def _check_accept(request: Request, policy: UasPolicy) -> Response | None:
    if request.method not in ANSWERED_WITH_BODY or "Accept" not in request.headers:
        return None
    ranges = request.headers.getall("Accept")
    if any(_accepts(ranges, offered) for offered in policy.response_content_types):
        return None
    return _reply(request, policy, 406)


def _accepts(ranges: list[str], offered: str) -> bool:
    """Does an Accept list admit `offered`?  An empty Accept admits nothing (20.1)."""
    for item in ranges:
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if _zero_q(params):
            continue
        if media in ("*/*", offered) or (media.endswith("/*") and offered.startswith(media[:-1])):
            return True
    return False


def _zero_q(params: str) -> bool:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) == 0.0
            except ValueError:
                return False
    return False


_CHECKS: tuple[Check, ...] = (
    _check_mandatory,
    _check_valid,
    _check_multiples,
    _check_method,
    _check_scheme,
    _check_max_forwards,
    _check_require,
    _check_body,
    _check_accept,
)


# ---- REGISTER (RFC 3261 10.3) ---------------------------------------------------


def check_register(request: Request, *, to_tag: str | None = None) -> Response | None:
    """Registrar-specific rules after check_request (10.3).

    The To of a REGISTER is the address-of-record and must be a SIP or SIPS
    URI (10.2, RFC 4475 3.3.4 unksm2) -> 400; Contact "*" must stand alone
    with Expires: 0 (10.3 step 6) -> 400.  Contact URIs of other schemes are
    legal bindings and pass.
    """
    policy = UasPolicy(
        frozenset(),
        frozenset(),
        frozenset(),
        frozenset(),
        frozenset(),
        to_tag or secrets.token_hex(6),
    )
    try:
        if uri_scheme(request.to.uri) not in ("sip", "sips"):
            return _reply(request, policy, 400, "Address-of-record must be a SIP URI")
        contacts = request.contacts
        for contact in contacts:
            contact.expires  # noqa: B018 - raises ParseError on a bad expires param
        if any(c.is_star for c in contacts) and (len(contacts) > 1 or request.expires != 0):
            return _reply(request, policy, 400, "Invalid wildcard Contact")
    except ParseError as exc:
        return _reply(request, policy, exc.status, exc.reason)
    return None


# ---- responses and credentials --------------------------------------------------


def check_response(response: Response) -> str | None:
    """Why a UA must drop this response, or None to hand it to its transaction.

    8.1.3.3 / 18.1.2: a response with more than one Via was not meant for a
    UA (it would be forwarded); RFC 4475 3.3.10 bcast adds that a Via naming a
    broadcast or multicast address must never be used to route the response.
    A response that does not parse is dropped too: there is no one to tell.
    """
    try:
        validate(response)
        vias = response.vias
    except ParseError as exc:
        return f"malformed response: {exc.reason}"
    for via in vias:
        if _is_broadcast(via.host):
            return f"Via names the broadcast or multicast address {via.host}"
    if len(vias) != 1:
        return f"{len(vias)} Via values in a response to a UA"
    return None


def _is_broadcast(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255")


def unknown_auth_schemes(request: Request, known: Iterable[str] = ("digest",)) -> list[str]:
    """The schemes of Authorization / Proxy-Authorization values we cannot verify (22.4).

    RFC 4475 3.3.7 regaut01: such credentials are not an error; a registrar
    that authenticates answers 401 with a Digest challenge, as if they were absent.
    """
    wanted = {scheme.lower() for scheme in known}
    schemes = []
    for name in ("Authorization", "Proxy-Authorization"):
        for value in request.headers.raw_values(name):
            scheme = value.strip().split(None, 1)[0] if value.strip() else ""
            if scheme.lower() not in wanted:
                schemes.append(scheme)
    return schemes
