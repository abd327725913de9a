"""The generated OpenAPI document against a real service: every operation, its successes
and its main errors, each answer validated against the schema the document declares for
that path, method and status; the document itself is valid OpenAPI 3.1, covers every
route and states the service's limits, and its examples fit their schemas.

The last tests are regressions of product bugs this suite (and schemathesis) found.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from pydantic import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from served import KEYS, Served, auction_body, served
from wire import until, waiting

import gateway.rpc as rpc
from gateway import models, openapi
from gateway.app import create_app
from gateway.client import Room
from gateway.openapi import Limits, openapi_document
from gateway.settings import Settings

DOC = openapi_document()
TOKEN_TTL_MAX_S = Settings().token_ttl_s
BASE = "urn:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(BASE, Resource.from_contents(DOC, DRAFT202012))
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


# -- the document as a schema source --------------------------------------------------------

def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def at(pointer: str) -> Any:
    node: Any = DOC
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def follow(node: Any, pointer: str) -> tuple[Any, str]:
    """`node` at `pointer`, or what its OpenAPI $ref names (with its own pointer)."""
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        node = at(pointer)
    return node, pointer


@cache
def validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{BASE}#{pointer}"}, registry=REGISTRY)


def doc_path(path: str) -> str:
    """The document's path of `path` (tests call the RPC relative to /api/v1)."""
    return path if path in DOC["paths"] else openapi.API + path


def operation(method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = DOC["paths"][doc_path(path)][method.lower()]
    return op


def response_spec(method: str, path: str, status: int) -> tuple[dict[str, Any], str]:
    responses = operation(method, path)["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which the document does not declare"
    base = f"/paths/{escape(doc_path(path))}/{method.lower()}/responses/{status}"
    spec: dict[str, Any]
    spec, pointer = follow(responses[str(status)], base)
    return spec, pointer


def check(response: httpx.Response, method: str, path: str, status: int | None = None,
          code: str | None = None) -> Any:
    """Validate `response` against the document's declaration for (path, method, its
    status); return the decoded body. `status`/`code`: what it must be."""
    if status is not None:
        assert response.status_code == status, (method, path, response.status_code, response.text[:500])
    spec, pointer = response_spec(method, path, response.status_code)
    for name, header in spec.get("headers", {}).items():
        if header.get("required"):
            assert name in response.headers, (method, path, name)
            validator(f"{pointer}/headers/{escape(name)}/schema").validate(response.headers[name])
    ctype = response.headers.get("content-type", "").split(";")[0].strip()
    assert ctype in spec["content"], (method, path, response.status_code, ctype, list(spec["content"]))
    schema = f"{pointer}/content/{escape(ctype)}/schema"
    body: Any
    if ctype == "application/json":
        body = response.json()
        errors = sorted(validator(schema).iter_errors(body), key=str)
        assert not errors, f"{method} {path} {response.status_code}: {errors[0]}\n{json.dumps(body)[:2000]}"
    elif ctype in ("application/octet-stream", "application/pdf"):
        body = response.content
        assert at(schema)["format"] == "binary"
    else:
        body = response.text
        validator(schema).validate(body)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def check_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An error outside any operation (unknown path, method): the common Error body."""
    assert response.status_code == status, response.text
    validator("/components/schemas/Error").validate(response.json())
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and openapi.RPC_ERROR_CODES[code][0] == status
    return error


def request_schema(method: str, path: str) -> Draft202012Validator:
    body, pointer = follow(operation(method, path)["requestBody"],
                           f"/paths/{escape(doc_path(path))}/{method}/requestBody")
    assert "application/json" in body["content"]
    return validator(f"{pointer}/content/application~1json/schema")


def schema_accepts(method: str, path: str, body: Any) -> bool:
    return bool(request_schema(method, path).is_valid(body))


def query_accepts(method: str, path: str, name: str, raw: str) -> bool:
    """Whether the document's schema of query parameter `name` accepts the text `raw`."""
    params = [p for p in operation(method, path)["parameters"] if p["name"] == name and p["in"] == "query"]
    assert len(params) == 1, name
    schema = params[0]["schema"]
    value: Any = raw
    if schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", raw):
        value = int(raw)
    elif schema.get("type") == "number":
        try:
            number = float(raw)
            value = number if math.isfinite(number) else raw
        except ValueError:
            pass
    return bool(Draft202012Validator(schema, registry=REGISTRY).is_valid(value))


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def sse_events(text: str) -> list[dict[str, str]]:
    """Parse server-sent events into dicts of their fields (comments dropped)."""
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if fields:
            out.append(fields)
    return out


# -- clients -----------------------------------------------------------------------------

def client(srv: Served, role: str | None = "portal", **kw: Any) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {KEYS[role]}"} if role else {}
    return httpx.AsyncClient(base_url=srv.base + "/api/v1", headers=headers, timeout=10, **kw)


class Api:
    """Raw calls per role, each answer checked against the document."""

    def __init__(self, srv: Served) -> None:
        self.srv = srv
        self.clients = {role: client(srv, role) for role in KEYS}
        self.anonymous = client(srv, None)

    async def aclose(self) -> None:
        for c in [*self.clients.values(), self.anonymous]:
            await c.aclose()

    async def call(self, role: str | None, method: str, template: str, status: int | None = None,
                   code: str | None = None, *, params: dict[str, Any] | None = None, json_body: Any = None,
                   content: bytes | None = None, headers: dict[str, str] | None = None,
                   **path_params: str) -> Any:
        url = template.format(**path_params)
        http = self.anonymous if role is None else self.clients[role]
        response = await http.request(method.upper(), url, params=params, json=json_body, content=content,
                                      headers=headers)
        return check(response, method, template, status, code)


# -- the document itself -----------------------------------------------------------------

def test_document_is_valid_openapi_and_consistent() -> None:
    validate_spec(DOC)  # OpenAPI 3.1, with its JSON Schema dialect
    assert json.loads(json.dumps(DOC)) == DOC  # plain JSON
    assert openapi_document() is DOC  # built once
    ids = set()
    for path, method, op in operations():
        assert op["operationId"] not in ids
        ids.add(op["operationId"])
        responses = op["responses"]
        assert any(s.startswith("2") for s in responses), (method, path)
        for status, response in responses.items():
            spec, _ = follow(response, "")
            assert spec["description"], (method, path, status)
            schema = spec.get("content", {}).get("application/json", {}).get("schema", {})
            for part in schema.get("allOf", [])[1:]:  # an error answer: each code at its own status
                for code in part["properties"]["error"]["properties"]["code"]["enum"]:
                    assert openapi.status_of(code) == int(status), (path, method, code)
        if op.get("security") == []:
            assert "x-roles" not in op and "401" not in responses
        else:
            roles = op["x-roles"]
            assert roles and set(roles) <= set(openapi.ROLES) | set(openapi.TOKEN_ROLES), op["operationId"]
            assert f"**Roles:** {', '.join(roles)}." in op["description"]
            assert ("403" in responses) == (set(roles) != set(openapi.ROLES))
    for schema in DOC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    # every link names an operation and each of its parameters
    for _path, _method, op in operations():
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                target = next(o for _, _, o in operations() if o["operationId"] == link["operationId"])
                assert set(link["parameters"]) <= {p["name"] for p in target.get("parameters", [])}, link


def schemas_with_examples(node: Any, pointer: str) -> Iterator[tuple[str, list[Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list) and ("type" in node or "oneOf" in node):
            yield pointer, node["examples"]
        for key, value in node.items():
            yield from schemas_with_examples(value, f"{pointer}/{escape(str(key))}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schemas_with_examples(value, f"{pointer}/{i}")


def test_document_examples_validate() -> None:
    found = list(schemas_with_examples(DOC, ""))
    assert len(found) >= 5
    for pointer, examples in found:
        for example in examples:
            validator(pointer).validate(example)


def test_document_states_the_settings_limits() -> None:
    doc = openapi_document(Limits(token_ttl_s=600, feed_wait_max_s=5.0))
    ttl = doc["components"]["schemas"]["AdmitRequest"]["properties"]["ttl_s"]["anyOf"][0]
    assert (ttl["minimum"], ttl["maximum"]) == (60, 600)
    wait = next(p for p in doc["paths"]["/api/v1/events"]["get"]["parameters"] if p["name"] == "wait")
    assert wait["schema"]["maximum"] == 5.0 and wait["schema"]["default"] == 0  # the default wait, documented
    assert openapi_document() == DOC and Limits() == Limits(Settings().token_ttl_s, Settings().feed_wait_max_s)


@pytest.mark.trio
async def test_every_route_is_in_the_served_document(tmp_path: Path) -> None:
    async with served(tmp_path, token_ttl_s=3600) as srv:
        app = create_app(srv.service)
        routes = set()
        for rule in app.url_map.iter_rules():
            if getattr(rule, "websocket", False) or rule.endpoint == "static" or rule.rule.startswith("/room/"):
                continue  # the room, and the web room's pages (not API: docs/web-room.md)
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
        assert routes == {(path, method) for path, method, _ in operations()}
        async with client(srv, None) as anonymous:
            served_doc = check(await anonymous.get("/openapi.json"), "get", "/openapi.json", 200)
        assert served_doc == openapi_document(Limits(token_ttl_s=3600))


def test_request_models_agree_with_the_schema() -> None:
    """The models validate what the generated schema accepts, for each case of the tables below."""
    for _what, changes, _path, schema_tells in INVALID_CONFIGS:
        bad = {**auction_body("A-bad", seconds=60), **changes}
        if schema_tells:
            with pytest.raises(ValidationError):
                models.AuctionConfig.model_validate(bad)
    for variant in VALID_VARIANTS:
        models.AuctionConfig.model_validate({**auction_body("A-good", seconds=60), **variant})
    with pytest.raises(ValidationError) as exc:
        models.AdmitRequest.model_validate({"bidders": ["ok", "a b", "ok"], "ttl_s": True, "x": 1})
    found = {(d["path"], d["message"]) for d in models.problems(exc.value)}
    assert found >= {("bidders[1]", models.ID_MESSAGE), ("x", "unknown field")} and "ttl_s" in dict(found)
    with pytest.raises(ValidationError) as exc:
        models.AdmitRequest.model_validate({"bidders": ["ok", "ok"]})
    assert models.problems(exc.value) == [{"path": "bidders", "message": "lists an id twice"}]


# -- authentication and roles ------------------------------------------------------------

BODIES: dict[str, Any] = {
    "admit_bidders": {"bidders": ["r2"]}, "revoke_bidder": {"reason": "test"}, "observer_token": {},
    "suspend": {}, "resume": {}, "cancel": {"reason": "test"},
}


@pytest.mark.trio
async def test_every_operation_checks_key_and_role(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        body = auction_body("R-1", seconds=60, lots=2, bidders=("r1",))
        await api.call("portal", "post", "/auctions", 201, json_body=body)
        ids = {"auction_id": "R-1", "bidder_id": "r1", "tender_id": "R-1", "question_id": "q1", "collective_id": "C-1",
               "article": "A4", "member_id": "m1", "version": "1", "lot": "L1"}
        wrong = {None: None, "wrong": "Bearer not-a-key-0123456789", "basic": f"Basic {KEYS['portal']}",
                 "empty": "Bearer"}
        seen_roles = set()
        for path, method, op in operations():
            if op.get("security") == []:
                continue
            path = path.removeprefix(openapi.API)
            kwargs = {"json_body": BODIES.get(op["operationId"])}
            if op["operationId"] == "create_auction":
                kwargs["json_body"] = body
            for label, header in wrong.items():
                headers = {} if header is None else {"Authorization": header}
                response = await api.anonymous.request(method.upper(), path.format(**ids), headers=headers,
                                                       json=kwargs["json_body"])
                check(response, method, path, 401, "key_missing" if label is None else "key_invalid")
            for role in openapi.ROLES:
                allowed = role in op["x-roles"]
                response = await api.clients[role].request(method.upper(), path.format(**ids),
                                                           json=kwargs["json_body"])
                if allowed:
                    assert response.status_code not in (401, 403), (path, method, role, response.text)
                    seen_roles.add((op["operationId"], role))
                    check(response, method, path)
                else:
                    check(response, method, path, 403, "forbidden")
        assert len(seen_roles) == sum(len(set(op.get("x-roles", ())) & set(openapi.ROLES)) for p, _, op in operations())
        await api.aclose()


# -- auctions --------------------------------------------------------------------------

INVALID_CONFIGS: list[tuple[str, dict[str, Any], str, bool]] = [
    # (what, changes, detail path, whether JSON Schema can tell)
    ("unknown field", {"colour": "red"}, "colour", True),
    ("bad id", {"auction_id": "-bad"}, "auction_id", True),
    ("title too long", {"title": "x" * 501}, "title", True),
    ("currency", {"currency": "mad"}, "currency", True),
    ("decimals", {"decimals": 7}, "decimals", True),
    ("no offset", {"start": "2026-03-02T10:00:00"}, "start", True),
    ("end before start", {"end": "2000-01-01T00:00:00Z"}, "end", False),
    ("bidders", {"bidders": ["a", "a"]}, "bidders", True),
    ("min_bidders", {"min_bidders": 0}, "min_bidders", True),
    ("visibility", {"visibility": "all"}, "visibility", True),
    ("stagger", {"stagger": "2 minutes"}, "stagger", True),
    ("secret", {"pseudonym_secret": "short"}, "pseudonym_secret", True),
    ("rules not object", {"rules": None}, "rules", True),
    ("min_step float", {"rules": {"min_step": 1.5}}, "lots[0].rules.min_step", True),
    ("percent", {"rules": {"min_step_percent": "101"}}, "lots[0].rules.min_step_percent", True),
    ("max below min", {"rules": {"min_step": "5", "max_step": "1"}}, "lots[0].rules.max_step", False),
    ("improve_on", {"rules": {"improve_on": "mine"}}, "lots[0].rules.improve_on", True),
    ("trigger", {"extension": {"trigger": "always"}}, "lots[0].extension.trigger", True),
    ("extend_by", {"extension": {"window": "1m", "extend_by": "0s"}}, "lots[0].extension.extend_by", False),
    ("inactivity", {"extension": {"inactivity_close": "0s"}}, "lots[0].extension.inactivity_close", True),
    ("no lots", {"lots": []}, "lots", True),
    ("lot price", {"lots": [{"lot_id": "L1", "estimate": "1", "starting_price": "0.00"}]},
     "lots[0].starting_price", True),
    ("lot decimals", {"lots": [{"lot_id": "L1", "estimate": "1", "starting_price": "1.001"}]},
     "lots[0].starting_price", False),
    ("lot missing", {"lots": [{"lot_id": "L1", "estimate": "1"}]}, "lots[0].starting_price", True),
    ("lot unknown", {"lots": [{"lot_id": "L1", "estimate": "1", "starting_price": "1", "x": 1}]},
     "lots[0].x", True),
    ("reserve", {"lots": [{"lot_id": "L1", "estimate": "1", "starting_price": "1", "reserve_price": "2"}]},
     "lots[0].reserve_price", False),
    ("duplicate lots", {"lots": [{"lot_id": "L1", "estimate": "1", "starting_price": "1"}] * 2},
     "lots[1].lot_id", False),
]

VALID_VARIANTS: list[dict[str, Any]] = [
    {"stagger": 30, "extension": {"window": 60, "extend_by": "1m30s", "hard_close": None}},
    {"buyer_ref": None, "decimals": None, "min_bidders": None, "visibility": None, "bidders": None},
    {"rules": {"min_step_percent": "0.5", "max_step_percent": "10", "improve_on": "best"}},
    {"decimals": 0, "rules": {"min_step": "1"},
     "lots": [{"lot_id": "L1", "estimate": "100", "starting_price": "100", "reserve_price": "90",
                              "title": None, "extension": {"inactivity_close": "5m", "trigger": "top_n",
                                                           "top_n": 3, "mode": "from_close"}}]},
    {"pseudonym_secret": "s" * 16, "visibility": "rank_and_best"},
]


@pytest.mark.trio
async def test_create_get_and_list(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        body = auction_body("A-1", seconds=60, lots=2, bidders=("acme", "beta"), stagger="1m")
        assert schema_accepts("post", "/auctions", body)
        created = await api.call("portal", "post", "/auctions", 201, json_body=body)
        assert "pseudonym_secret" not in created and created["bidders"] == [
            {"bidder_id": "acme", "admitted": True}, {"bidder_id": "beta", "admitted": True}]
        assert created["lots"][1]["close_at"] > created["lots"][0]["close_at"]
        # idempotent: the same body again (the generated secret is not part of the comparison)
        again = await api.call("portal", "post", "/auctions", 200, json_body=body)
        assert again["auction_id"] == "A-1" and again["lots"][0]["lot_id"] == "L1"
        await api.call("portal", "post", "/auctions", 409, "auction_conflict", json_body={**body, "title": "Other"})
        await api.call("portal", "post", "/auctions", 409, "auction_conflict", json_body={**body, "lots": []})
        # every problem of an invalid configuration, with its path; the schema agrees
        for what, changes, path, schema_tells in INVALID_CONFIGS:
            bad = {**auction_body("A-bad", seconds=60), **changes}
            error = (await api.call("portal", "post", "/auctions", 422, "invalid_config", json_body=bad))["error"]
            assert path in [d["path"] for d in error["details"]], (what, error)
            if schema_tells:
                assert not schema_accepts("post", "/auctions", bad), what
        many = {**auction_body("A-bad", seconds=60), "currency": "x", "lots": [{"lot_id": "L1"}], "extra": 1}
        error = (await api.call("portal", "post", "/auctions", 422, "invalid_config", json_body=many))["error"]
        assert {d["path"] for d in error["details"]} >= {"currency", "extra", "lots[0].estimate"}
        await api.call("portal", "post", "/auctions", 422, "ends_in_past",
                       json_body=auction_body("A-past", start_in=-120, seconds=60))
        for i, variant in enumerate(VALID_VARIANTS):
            good = {**auction_body(f"A-v{i}", seconds=60), **variant}
            assert schema_accepts("post", "/auctions", good), variant
            await api.call("portal", "post", "/auctions", 201, json_body=good)
        plus_one = auction_body("A-tz", seconds=60)
        plus_one["start"] = plus_one["start"].replace("Z", "+00:00")
        assert schema_accepts("post", "/auctions", plus_one)
        await api.call("portal", "post", "/auctions", 201, json_body=plus_one)
        # not JSON, not an object, no body
        for not_json in (b"{", b"[1, 2]", b"null", b"", "\u00e9".encode("latin-1")):
            await api.call("portal", "post", "/auctions", 400, "invalid_json", content=not_json)
        await api.call("portal", "get", "/auctions", 200)
        async with client(srv) as once:  # its own connection: see test_connection_usable_after_413
            check(await once.post("/auctions", content=b"x" * (rpc.MAX_BODY + 1)), "post", "/auctions", 413,
                  "body_too_large")
        assert "413" in operation("post", "/auctions")["responses"]
        not_allowed = await api.clients["portal"].delete("/auctions")
        check_error(not_allowed, 405, "method_not_allowed")
        assert not_allowed.headers["Allow"] == "GET, HEAD, OPTIONS, POST"  # RFC 9110: the methods it takes
        check_error(await api.clients["portal"].get("/auctions/A-1/nothing"), 404, "not_found")

        # get: the portal sees the bidders, the others do not
        portal_view = await api.call("portal", "get", "/auctions/{auction_id}", 200, auction_id="A-1")
        assert portal_view["status"] == "open" and portal_view["admitted_bidders"] == 2 and "bidders" in portal_view
        for role in ("buyer", "auditor"):
            view = await api.call(role, "get", "/auctions/{auction_id}", 200, auction_id="A-1")
            assert "bidders" not in view and "pseudonym_secret" not in view
        await api.call("buyer", "get", "/auctions/{auction_id}", 404, "unknown_auction", auction_id="nope")

        # list: filters, pages, invalid queries (the parameter schemas agree)
        page = await api.call("auditor", "get", "/auctions", 200, params={"limit": 2})
        assert [a["auction_id"] for a in page["auctions"]] == ["A-1", "A-v0"] and page["next"] == "A-v0"
        page = await api.call("buyer", "get", "/auctions", 200, params={"limit": 200, "after": page["next"]})
        assert page["auctions"][0]["auction_id"] == "A-v1" and page["next"] is None
        page = await api.call("portal", "get", "/auctions", 200, params={"status": "closed"})
        assert page == {"auctions": [], "next": None}
        page = await api.call("portal", "get", "/auctions", 200, params={"buyer_ref": "AO-1/2026", "status": "open"})
        assert len(page["auctions"]) == 6  # A-v1 has no buyer_ref
        assert (await api.call("portal", "get", "/auctions", 200, params={"after": "zzz"}))["auctions"] == []
        for name, raw in (("limit", "0"), ("limit", "201"), ("limit", "ten"), ("limit", "-1"), ("status", "done")):
            await api.call("portal", "get", "/auctions", 422, "invalid_query", params={name: raw})
            assert not query_accepts("get", "/auctions", name, raw), (name, raw)
        for name, raw in (("limit", "1"), ("limit", "200"), ("status", "scheduled"), ("after", "x")):
            await api.call("portal", "get", "/auctions", 200, params={name: raw})
            assert query_accepts("get", "/auctions", name, raw), (name, raw)
        await api.aclose()


# -- bidders, observers, lifecycle commands -----------------------------------------------

def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


@pytest.mark.trio
async def test_bidders_observers_and_lifecycle(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        await api.call("portal", "post", "/auctions", 201,
                       json_body=auction_body("A-1", seconds=60, lots=2, bidders=("acme",)))
        admit = "/auctions/{auction_id}/bidders"
        out = await api.call("portal", "post", admit, 200, json_body={"bidders": ["acme", "beta"], "ttl_s": 600},
                             auction_id="A-1")
        assert [t["bidder_id"] for t in out["tokens"]] == ["acme", "beta"]
        claims = jwt_claims(out["tokens"][1]["token"])
        assert (claims["auc"], claims["sub"], claims["role"], claims["aud"]) == ("A-1", "beta", "bidder",
                                                                                 "auction-room")
        assert claims["exp"] - claims["iat"] == 600
        problems = [
            ({"bidders": "acme"}, "bidders"), ({"bidders": []}, "bidders"), ({"bidders": ["a b"]}, "bidders[0]"),
            ({"bidders": ["x", "x"]}, "bidders"), ({"bidders": ["x"], "ttl_s": 59}, "ttl_s"),
            ({"bidders": ["x"], "ttl_s": TOKEN_TTL_MAX_S + 1}, "ttl_s"),
            ({"bidders": ["x"], "ttl_s": True}, "ttl_s"), ({"bidders": ["x"], "role": "admin"}, "role"),
        ]
        for bad, path in problems:
            error = (await api.call("portal", "post", admit, 422, "invalid_request", json_body=bad,
                                    auction_id="A-1"))["error"]
            assert path in [d["path"] for d in error["details"]], (bad, error)
            assert not schema_accepts("post", admit, bad), bad
        assert schema_accepts("post", admit, {"bidders": ["x"], "ttl_s": 60})
        await api.call("portal", "post", admit, 400, "invalid_json", content=b"", auction_id="A-1")
        await api.call("portal", "post", admit, 404, "unknown_auction", json_body={"bidders": ["x"]},
                       auction_id="nope")

        observe = "/auctions/{auction_id}/observers"
        token = await api.call("buyer", "post", observe, 200, json_body={"name": "commission"}, auction_id="A-1")
        assert jwt_claims(token["token"])["role"] == "observer" and token["name"] == "commission"
        token = await api.call("portal", "post", observe, 200, content=b"", auction_id="A-1")
        assert token["name"] == "observer"
        for bad in ({"name": "a b"}, {"ttl_s": 10}, {"who": 1}, {"name": None}):
            await api.call("buyer", "post", observe, 422, "invalid_request", json_body=bad, auction_id="A-1")
            assert not schema_accepts("post", observe, bad), bad
        await api.call("buyer", "post", observe, 400, "invalid_json", content=b"[]", auction_id="A-1")
        await api.call("buyer", "post", observe, 404, "unknown_auction", json_body={}, auction_id="nope")

        revoke = "/auctions/{auction_id}/bidders/{bidder_id}/revoke"
        out = await api.call("portal", "post", revoke, 200, json_body={"reason": "exclusion"}, auction_id="A-1",
                             bidder_id="beta")
        assert out == {"auction_id": "A-1", "bidder_id": "beta", "admitted": False}
        await api.call("portal", "post", revoke, 409, "not_admitted", auction_id="A-1", bidder_id="beta")
        await api.call("portal", "post", revoke, 404, "unknown_bidder", auction_id="A-1", bidder_id="ghost")
        await api.call("portal", "post", revoke, 404, "unknown_auction", auction_id="nope", bidder_id="acme")
        await api.call("portal", "post", revoke, 422, "invalid_request", json_body={"reason": "x" * 501},
                       auction_id="A-1", bidder_id="acme")
        await api.call("portal", "post", revoke, 400, "invalid_json", content=b"{,}", auction_id="A-1",
                       bidder_id="acme")
        view = await api.call("portal", "get", "/auctions/{auction_id}", 200, auction_id="A-1")
        assert view["bidders"] == [{"bidder_id": "acme", "admitted": True}, {"bidder_id": "beta", "admitted": False}]
        # a revoked bidder is admitted again by a new admission
        await api.call("portal", "post", admit, 200, json_body={"bidders": ["beta"]}, auction_id="A-1")

        suspend, resume, cancel = ("/auctions/{auction_id}/" + c for c in ("suspend", "resume", "cancel"))
        view = await api.call("buyer", "post", suspend, 200, json_body={"lot_id": "L1", "reason": "incident"},
                              auction_id="A-1")
        assert [lot["status"] for lot in view["lots"]] == ["suspended", "open"] and view["status"] == "open"
        await api.call("buyer", "post", suspend, 409, "not_suspendable", json_body={"lot_id": "L1"},
                       auction_id="A-1")
        view = await api.call("portal", "post", suspend, 200, auction_id="A-1")  # every lot it can: L2
        assert view["status"] == "suspended" and "bidders" not in view
        await api.call("portal", "post", suspend, 409, "not_suspendable", auction_id="A-1")
        await api.call("buyer", "post", suspend, 404, "unknown_lot", json_body={"lot_id": "L9"}, auction_id="A-1")
        await api.call("buyer", "post", suspend, 404, "unknown_auction", auction_id="nope")
        for bad in ({"lot_id": 1}, {"reason": 5}, {"lot": "L1"}):
            await api.call("buyer", "post", suspend, 422, "invalid_request", json_body=bad, auction_id="A-1")
            assert not schema_accepts("post", suspend, bad)
        await api.call("buyer", "post", resume, 422, "invalid_request", json_body={"reason": "x"},
                       auction_id="A-1")
        assert not schema_accepts("post", resume, {"reason": "x"})
        view = await api.call("buyer", "post", resume, 200, json_body={"lot_id": "L2"}, auction_id="A-1")
        assert [lot["status"] for lot in view["lots"]] == ["suspended", "open"]
        await api.call("portal", "post", resume, 200, json_body={"lot_id": None}, auction_id="A-1")
        await api.call("portal", "post", resume, 409, "not_suspended", auction_id="A-1")
        await api.call("portal", "post", resume, 400, "invalid_json", content=b"nope", auction_id="A-1")

        view = await api.call("portal", "post", cancel, 200, json_body={"lot_id": "L1", "reason": "error"},
                              auction_id="A-1")
        assert [lot["status"] for lot in view["lots"]] == ["cancelled", "open"]
        await api.call("portal", "post", cancel, 409, "not_cancellable", json_body={"lot_id": "L1"},
                       auction_id="A-1")
        await api.call("portal", "post", cancel, 422, "invalid_request", json_body={"lot_id": ["L1"]},
                       auction_id="A-1")
        view = await api.call("portal", "post", cancel, 200, auction_id="A-1")
        assert view["status"] == "closed"
        for template, role in ((cancel, "portal"), (suspend, "buyer"), (resume, "buyer")):
            await api.call(role, "post", template, 409, "auction_finished", auction_id="A-1")
        await api.call("portal", "post", admit, 409, "auction_finished", json_body={"bidders": ["x"]},
                       auction_id="A-1")
        await api.call("portal", "post", revoke, 409, "auction_finished", auction_id="A-1", bidder_id="acme")
        results = await api.call("buyer", "get", "/auctions/{auction_id}/results", 200, auction_id="A-1")
        assert results["final"] and results["identities"]
        assert {lot["reason"] for lot in results["lots"]} == {"cancelled"}
        await api.call("auditor", "get", "/auctions/{auction_id}/results", 404, "unknown_auction", auction_id="no")
        await api.aclose()


# -- bids, results, feed, journal --------------------------------------------------------

async def poll_until(api: Api, after: int, predicate: Any, auction_id: str) -> tuple[list[dict[str, Any]], int]:
    """Long-poll the feed from `after` until an entry satisfies `predicate`."""
    entries: list[dict[str, Any]] = []
    with trio.fail_after(10):
        while not any(predicate(e) for e in entries):
            page = await api.call("portal", "get", "/events", 200,
                                  params={"after": after, "wait": 5, "auction_id": auction_id})
            entries += page["events"]
            after = page["last_seq"]
    return entries, after


@pytest.mark.trio
async def test_bids_results_feed_and_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        body = auction_body("B-1", seconds=1.5, lots=2, bidders=("acme", "beta"), stagger="1m", window="0s",
                            extend_by="0s")
        await api.call("portal", "post", "/auctions", 201, json_body=body)
        tokens = (await api.call("portal", "post", "/auctions/{auction_id}/bidders", 200,
                                 json_body={"bidders": ["acme", "beta"]}, auction_id="B-1"))["tokens"]
        async with Room.connect(srv.room_url("B-1"), tokens[0]["token"]) as acme, \
                Room.connect(srv.room_url("B-1"), tokens[1]["token"]) as beta:
            assert (await acme.bid("L1", "9990.00", "a1"))["type"] == "ack"
            assert (await beta.bid("L1", "9980.50", "b1"))["type"] == "ack"
            assert (await acme.bid("L2", "9000.00", "a2"))["type"] == "ack"
        view = await api.call("buyer", "get", "/auctions/{auction_id}", 200, auction_id="B-1")
        assert view["lots"][0]["best_price"] == "9980.50" and view["lots"][0]["bids"] == 2

        entries, last = await poll_until(api, 0, lambda e: e["type"] == "LotAwarded", "B-1")
        assert [e["type"] for e in entries][:2] == ["AuctionCreated", "LotOpened"]
        # midway: results without identities for everyone
        for role in openapi.ROLES:
            results = await api.call(role, "get", "/auctions/{auction_id}/results", 200, auction_id="B-1")
            assert not results["final"] and not results["identities"]
            lot1, lot2 = results["lots"]
            assert lot1["status"] == "awarded" and lot1["awarded_price"] == "9980.50" and lot1["winner_id"] is None
            assert lot1["winner_pseudonym"] and lot1["ranking"][1]["bidder_id"] is None
            assert lot1["savings"] == "19.50" and lot1["close_reason"] == "scheduled"
            assert lot2["status"] == "pending"

        # the long poll returns as soon as an entry comes
        async with trio.open_nursery() as nursery:
            got: list[Any] = []

            async def wait_for_entry() -> None:
                got.append(await api.call("buyer", "get", "/events", 200, params={"after": last, "wait": 10}))
            nursery.start_soon(wait_for_entry)
            await until(lambda: waiting(srv))  # the long poll is parked in the feed
            assert not got
            with trio.fail_after(5):
                await api.call("portal", "post", "/auctions/{auction_id}/cancel", 200, auction_id="B-1")
        assert [e["type"] for e in got[0]["events"]][:2] == ["LotCancelled", "LotUnsuccessful"]

        entries, last = await poll_until(api, last, lambda e: e["type"] == "AuctionClosed", "B-1")
        for role, identities in (("portal", True), ("buyer", True), ("auditor", False)):
            results = await api.call(role, "get", "/auctions/{auction_id}/results", 200, auction_id="B-1")
            assert results["final"] and results["identities"] is identities
            lot1 = results["lots"][0]
            assert lot1["winner_id"] == ("beta" if identities else None)
            assert [b["bidder_id"] for b in lot1["ranking"]] == (["beta", "acme"] if identities else [None, None])
            assert results["awarded_total"] == "9980.50" and results["savings_percent"] == "0.20"

        # the whole feed again, from the start, in pages; seqs are consecutive
        page = await api.call("buyer", "get", "/events", 200, params={"limit": 3})
        assert [e["seq"] for e in page["events"]] == [1, 2, 3] and page["last_seq"] == 3
        page = await api.call("buyer", "get", "/events", 200, params={"after": 3, "limit": 200})
        assert page["events"][-1]["type"] == "AuctionClosed"
        empty = await api.call("buyer", "get", "/events", 200, params={"after": page["last_seq"]})
        assert empty == {"events": [], "last_seq": page["last_seq"]}
        for name, raw in (("after", "-1"), ("after", "x"), ("limit", "0"), ("limit", "201"), ("wait", "31"),
                          ("wait", "nan"), ("wait", "inf"), ("wait", "soon")):
            await api.call("portal", "get", "/events", 422, "invalid_query", params={name: raw})
            assert not query_accepts("get", "/events", name, raw), (name, raw)
        for name, raw in (("after", "0"), ("wait", "0.1"), ("limit", "200")):
            assert query_accepts("get", "/events", name, raw), (name, raw)

        # server-sent events, resuming after Last-Event-ID (which wins over a smaller ?after=)
        http = api.clients["buyer"]
        headers = {"Accept": "text/event-stream", "Last-Event-ID": "2"}
        received: list[dict[str, str]] = []
        with trio.fail_after(5):
            async with http.stream("GET", "/events", params={"after": 1, "auction_id": "B-1"},
                                   headers=headers) as stream:
                spec, pointer = response_spec("get", "/events", stream.status_code)
                assert stream.headers["content-type"].split(";")[0] in spec["content"]
                assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
                text = ""
                async for chunk in stream.aiter_text():
                    text += chunk
                    received = [e for e in sse_events(text) if "data" in e]
                    if received and received[-1]["event"] == "AuctionClosed":
                        break
        assert text.startswith("retry: 2000\n\n")
        assert int(received[0]["id"]) == 3
        sse = validator(f"{pointer}/content/text~1event-stream/x-sse-event")
        for event in received:
            sse.validate(event)
            entry = json.loads(event["data"])
            validator("/components/schemas/FeedEntry").validate(entry)
            assert (entry["seq"], entry["type"]) == (int(event["id"]), event["event"])
        assert len(received) == len([e for e in (await api.call("portal", "get", "/events", 200, params={
            "after": 2, "auction_id": "B-1"}))["events"]])
        # a Last-Event-ID that is not a seq is refused, not ignored (schemathesis sent `{}`)
        for bad in ("{}", "", "-1", "1" * 19, "1.5"):
            response = await http.get("/events", headers={"Last-Event-ID": bad, "Accept": "text/event-stream"})
            check(response, "get", "/events", 400, "invalid_header")
        # an invalid query is a JSON error, event stream or not
        response = await http.get("/events", params={"limit": "0"}, headers={"Accept": "text/event-stream"})
        check(response, "get", "/events", 422, "invalid_query")

        # the auditor's export verifies on its own
        data = await api.call("auditor", "get", "/auctions/{auction_id}/journal", 200, auction_id="B-1")
        export = tmp_path / "B-1.journal"
        export.write_bytes(data)
        from replay.cli import main as replay_main

        assert replay_main(["verify", str(export)]) == 0
        assert "OK: every record verified" in capsys.readouterr().out
        await api.call("auditor", "get", "/auctions/{auction_id}/journal", 404, "unknown_auction", auction_id="no")
        await api.aclose()


# -- operations endpoints and the journal failing -------------------------------------------

@pytest.mark.trio
async def test_operations_endpoints_and_journal_unavailable(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, httpx.AsyncClient(base_url=srv.base) as root:
        api = Api(srv)
        await api.call("portal", "post", "/auctions", 201, json_body=auction_body("J-1", seconds=60))
        check(await root.get("/healthz"), "get", "/healthz", 200)
        check(await root.get("/readyz"), "get", "/readyz", 200)
        metrics = check(await root.get("/metrics"), "get", "/metrics", 200)
        assert 'auction_rpc_requests_total{route="create_auction",status="201"} 1.0' in metrics
        srv.service.runtime.writer.failure = OSError("test: the disk is gone")
        try:
            check(await root.get("/readyz"), "get", "/readyz", 503, "not_ready")
            await api.call("portal", "post", "/auctions", 503, "journal_unavailable",
                           json_body=auction_body("J-2", seconds=60))
            for template, role, body in (("/auctions/{auction_id}/bidders", "portal", {"bidders": ["x"]}),
                                         ("/auctions/{auction_id}/suspend", "buyer", {}),
                                         ("/auctions/{auction_id}/cancel", "portal", {})):
                await api.call(role, "post", template, 503, "journal_unavailable", json_body=body, auction_id="J-1")
            # reads still work; invalid input is still refused as such
            await api.call("auditor", "get", "/auctions/{auction_id}", 200, auction_id="J-1")
            await api.call("portal", "post", "/auctions/{auction_id}/suspend", 422, "invalid_request",
                           json_body={"x": 1}, auction_id="J-1")
            check(await root.get("/healthz"), "get", "/healthz", 200)
        finally:
            srv.service.runtime.writer.failure = None
        await api.aclose()


# -- bugs found by this suite, now fixed: kept as regression tests ---------------------

async def answer_head(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    """Read one answer (status line and headers, then its Content-Length body) off `stream`."""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive_some(65536)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *([0-9]+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += await stream.receive_some(65536)
    buffer[:] = rest[length:]
    return head


def keep_alive_after_bodies(base: str) -> list[str]:
    """(in a thread) Requests whose body the service need not read, each followed by a GET on
    the same kept-alive connection (requests, as schemathesis uses it, reuses it where httpx
    opens a new one); the calls that got no answer."""
    import requests

    stuck = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {KEYS['portal']}"
        for i in range(20):
            for method in ("OPTIONS", "GET", "TRACE"):
                session.request(method, base + "/api/v1/auctions", data="x" * (100 + i), timeout=5)
                try:
                    session.get(base + "/api/v1/auctions", timeout=2)
                except requests.RequestException:
                    stuck.append(f"{method} #{i}")
                    session.close()
    return stuck


@pytest.mark.trio
async def test_an_unread_body_does_not_wedge_the_connection(tmp_path: Path) -> None:
    """Found by schemathesis: an answer sent before the body was read (OPTIONS, GET, 405)
    could leave it on the kept-alive connection, and the next request got no answer."""
    async with served(tmp_path) as srv:
        assert await trio.to_thread.run_sync(keep_alive_after_bodies, srv.base) == []


@pytest.mark.trio
async def test_an_integral_number_is_an_integer(tmp_path: Path) -> None:
    """Found by schemathesis: JSON Schema counts 600.0 as an integer, so the RPC does too."""
    async with served(tmp_path) as srv:
        api = Api(srv)
        await api.call("portal", "post", "/auctions", 201, json_body=auction_body("I-1", seconds=60))
        out = await api.call("portal", "post", "/auctions/{auction_id}/bidders", 200,
                             json_body={"bidders": ["acme"], "ttl_s": 600.0}, auction_id="I-1")
        assert jwt_claims(out["tokens"][0]["token"])["exp"] - jwt_claims(out["tokens"][0]["token"])["iat"] == 600
        for bad in (600.5, True, "600"):
            await api.call("portal", "post", "/auctions/{auction_id}/observers", 422, "invalid_request",
                           json_body={"ttl_s": bad}, auction_id="I-1")
        await api.aclose()


@pytest.mark.trio
async def test_the_document_example_auction_is_accepted(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        example = DOC["components"]["schemas"]["AuctionConfig"]["examples"][0]
        assert example == models.EXAMPLE_AUCTION
        await api.call("portal", "post", "/auctions", 201, json_body=example)
        await api.aclose()


@pytest.mark.trio
async def test_instant_out_of_range_is_invalid_config(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        body = auction_body("X-1", seconds=60, extension={"hard_close": "9999-12-31T23:59:59-10:00"})
        error = (await api.call("portal", "post", "/auctions", 422, "invalid_config", json_body=body))["error"]
        assert any(d["path"].endswith("extension.hard_close") for d in error["details"])
        await api.aclose()


@pytest.mark.trio
async def test_unrepresentable_close_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        body = auction_body("X-2", seconds=60, lots=2, stagger="99999999999999h")
        try:
            await api.call("portal", "post", "/auctions", 422, "invalid_config", json_body=body)
        finally:
            await api.call("portal", "get", "/auctions/{auction_id}", 404, "unknown_auction", auction_id="X-2")
            await api.call("portal", "post", "/auctions", 201, json_body=auction_body("X-3", seconds=60))
            await api.aclose()


@pytest.mark.trio
async def test_metrics_count_a_413_as_413(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, httpx.AsyncClient(base_url=srv.base) as root:
        api = Api(srv)
        response = await api.clients["portal"].post("/auctions", content=b"x" * (rpc.MAX_BODY + 1))
        check(response, "post", "/auctions", 413, "body_too_large")
        metrics = check(await root.get("/metrics"), "get", "/metrics", 200)
        assert 'auction_rpc_requests_total{route="create_auction",status="413"} 1.0' in metrics, metrics[-600:]
        await api.aclose()


@pytest.mark.trio
async def test_connection_usable_after_413(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, client(srv, "portal", limits=httpx.Limits(max_connections=1)) as http:
        response = await http.post("/auctions", content=b"x" * (rpc.MAX_BODY + 1))
        check(response, "post", "/auctions", 413, "body_too_large")
        with trio.move_on_after(2):
            check(await http.get("/auctions"), "get", "/auctions", 200)
            return
        raise AssertionError("the request after a 413 got no answer")


@pytest.mark.trio
async def test_feed_hides_the_winner_until_every_lot_ended(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Api(srv)
        body = auction_body("X-4", seconds=1.5, lots=2, bidders=("acme",), stagger="1m", window="0s",
                            extend_by="0s")
        await api.call("portal", "post", "/auctions", 201, json_body=body)
        token = (await api.call("portal", "post", "/auctions/{auction_id}/bidders", 200,
                                json_body={"bidders": ["acme"]}, auction_id="X-4"))["tokens"][0]["token"]
        async with Room.connect(srv.room_url("X-4"), token) as acme:
            assert (await acme.bid("L1", "9990.00", "a1"))["type"] == "ack"
        entries, _ = await poll_until(api, 0, lambda e: e["type"] == "LotAwarded", "X-4")
        results = await api.call("buyer", "get", "/auctions/{auction_id}/results", 200, auction_id="X-4")
        assert not results["identities"]
        awarded = next(e for e in entries if e["type"] == "LotAwarded")
        try:
            assert "bidder_id" not in awarded, awarded
        finally:
            await api.aclose()
