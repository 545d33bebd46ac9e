"""The registrar's rules (RFC 3261 §10.3) with a real store and digest, no sockets."""

from __future__ import annotations

import pytest

from pbx.registrar import Registrar, RegistrarConfig
from pbx.sip.digest_client import DigestClient
from pbx.sip.digest_server import DigestServer
from pbx.sip.message import Request, Response
from pbx.store import Store

SOURCE = ("192.0.2.10", 40000)
NOW, WALL = 1000.0, 1_700_000_000.0


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "pbx.db") as store:
        store.add_extension("1001", "secret-1001", "Alice")
        store.add_extension("1002", "secret-1002", "Bob")
        yield store


@pytest.fixture
def registrar(store):
    auth = DigestServer(store.realm, store.nonce_secret, algorithms=("SHA-256", "MD5"))
    return Registrar(store, auth, RegistrarConfig(min_expires=60, max_expires=3600))


def register(
    user: str = "1001",
    contacts: tuple[str, ...] = ("<sip:1001@10.0.0.5:5060>",),
    expires: int | None = 600,
    cseq: int = 1,
    call_id: str = "reg-1",
    auth: str | None = None,
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-reg;rport"),
        ("From", f"<sip:{user}@pbx.example>;tag=abc"),
        ("To", f"<sip:{user}@pbx.example>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
        ("Max-Forwards", "70"),
    ]
    headers += [("Contact", c) for c in contacts]
    if expires is not None:
        headers.append(("Expires", str(expires)))
    if auth is not None:
        headers.append(("Authorization", auth))
    return Request("REGISTER", "sip:pbx.example", headers)


def authenticated(
    registrar: Registrar, password: str = "secret-1001", user: str = "1001", **kwargs
) -> Response:
    """Send the REGISTER unauthenticated, answer the 401, return the final response."""
    first = registrar.handle(register(user=user, **kwargs), SOURCE, "UDP", NOW, WALL)
    assert first.status == 401
    challenges = first.headers.getall("WWW-Authenticate")
    client = DigestClient(user, password)
    value = client.authorization(challenges, "REGISTER", "sip:pbx.example")
    cseq = kwargs.pop("cseq", 1) + 1
    return registrar.handle(
        register(user=user, cseq=cseq, auth=value, **kwargs), SOURCE, "UDP", NOW, WALL
    )


def test_unauthenticated_register_is_challenged_sha256_first(registrar):
    response = registrar.handle(register(), SOURCE, "UDP", NOW, WALL)
    assert response.status == 401
    challenges = response.headers.getall("WWW-Authenticate")
    assert len(challenges) == 2
    assert "algorithm=SHA-256" in challenges[0]
    assert "algorithm=MD5" in challenges[1]


def test_register_binds_contact_with_source_address(registrar, store):
    response = authenticated(registrar)
    assert response.status == 200
    assert response.headers.getall("Contact") == ["<sip:1001@10.0.0.5:5060>;expires=600"]
    assert response.headers.get("Date", "").endswith("GMT")
    [binding] = store.active_bindings(WALL, "1001")
    assert (binding.source_host, binding.source_port, binding.transport) == (*SOURCE, "UDP")
    assert binding.expires_at == WALL + 600


def test_wrong_password_and_unknown_user_look_the_same(registrar):
    wrong = authenticated(registrar, password="not-the-password")
    unknown = authenticated(
        registrar, user="1999", password="whatever-pass", contacts=("<sip:1999@10.0.0.5>",)
    )
    assert wrong.status == unknown.status == 401
    assert [n for n, _ in wrong.headers] == [n for n, _ in unknown.headers]
    shape = [v.split("nonce=")[0] for v in wrong.headers.getall("WWW-Authenticate")]
    assert shape == [v.split("nonce=")[0] for v in unknown.headers.getall("WWW-Authenticate")]


def test_expires_below_minimum_gets_423(registrar):
    response = authenticated(registrar, expires=10)
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"


def test_expires_above_maximum_is_capped(registrar):
    response = authenticated(registrar, expires=999999)
    assert response.headers.getall("Contact") == ["<sip:1001@10.0.0.5:5060>;expires=3600"]


def test_several_contacts_and_query_without_contact(registrar, store):
    contacts = ("<sip:1001@10.0.0.5:5060>;expires=300", "<sip:1001@10.0.0.6:5062>")
    assert authenticated(registrar, contacts=contacts, expires=900).status == 200
    query = authenticated(registrar, contacts=(), expires=None, call_id="q", cseq=10)
    assert sorted(query.headers.getall("Contact")) == [
        "<sip:1001@10.0.0.5:5060>;expires=300",
        "<sip:1001@10.0.0.6:5062>;expires=900",
    ]
    assert len(store.active_bindings(WALL, "1001")) == 2


def test_star_with_expires_zero_removes_all(registrar, store):
    authenticated(registrar, contacts=("<sip:1001@10.0.0.5>", "<sip:1001@10.0.0.6>"))
    response = authenticated(registrar, contacts=("*",), expires=0, call_id="x", cseq=5)
    assert response.status == 200
    assert response.headers.getall("Contact") == []
    assert store.active_bindings(WALL, "1001") == []


def test_star_needs_expires_zero(registrar):
    response = authenticated(registrar, contacts=("*",), expires=60)
    assert response.status == 400


def test_expires_zero_removes_one_binding(registrar, store):
    authenticated(registrar, contacts=("<sip:1001@10.0.0.5>", "<sip:1001@10.0.0.6>"))
    authenticated(registrar, contacts=("<sip:1001@10.0.0.5>;expires=0",), cseq=7)
    assert [b.contact for b in store.active_bindings(WALL, "1001")] == ["sip:1001@10.0.0.6"]


def test_out_of_order_cseq_on_same_call_id_gets_500(registrar):
    assert authenticated(registrar, cseq=20).status == 200
    assert authenticated(registrar, cseq=5).status == 500


def test_authenticated_as_another_user_is_forbidden(registrar):
    first = registrar.handle(register(user="1002"), SOURCE, "UDP", NOW, WALL)
    value = DigestClient("1001", "secret-1001").authorization(
        first.headers.getall("WWW-Authenticate"), "REGISTER", "sip:pbx.example"
    )
    response = registrar.handle(register(user="1002", auth=value), SOURCE, "UDP", NOW, WALL)
    assert response.status == 403


def test_disabled_extension_cannot_register(registrar, store):
    store.update_extension("1001", enabled=False)
    assert authenticated(registrar).status == 401


def test_bindings_expire(registrar, store):
    authenticated(registrar, expires=60)
    assert store.active_bindings(WALL + 59, "1001")
    assert store.active_bindings(WALL + 61, "1001") == []


def test_same_contact_twice_in_one_register_keeps_the_last(registrar, store):
    response = authenticated(
        registrar, contacts=("<sip:1001@10.0.0.5>;expires=120", "<sip:1001@10.0.0.5>;expires=300")
    )
    assert response.status == 200
    assert response.headers.getall("Contact") == ["<sip:1001@10.0.0.5>;expires=300"]


def test_out_of_order_register_leaves_the_bindings_as_they_were(registrar, store):
    authenticated(registrar, cseq=20, contacts=("<sip:1001@10.0.0.5>",))
    response = authenticated(
        registrar, cseq=5, contacts=("<sip:1001@10.0.0.9>", "<sip:1001@10.0.0.5>;expires=0")
    )
    assert response.status == 500
    assert [b.contact for b in store.active_bindings(WALL, "1001")] == ["sip:1001@10.0.0.5"]


def test_password_changed_by_another_store_is_used_at_once(registrar, store, tmp_path):
    assert authenticated(registrar).status == 200
    with Store(tmp_path / "pbx.db") as cli:
        cli.set_password("1001", "changed-1001")
    assert authenticated(registrar, cseq=10).status == 401
    assert authenticated(registrar, password="changed-1001", cseq=20).status == 200


def test_extension_added_by_another_store_can_register_at_once(registrar, store, tmp_path):
    assert authenticated(registrar, password="secret-1003", user="1003").status == 401
    with Store(tmp_path / "pbx.db") as cli:
        cli.add_extension("1003", "secret-1003")
    assert authenticated(registrar, password="secret-1003", user="1003").status == 200
