"""The OpenAPI document describes exactly the routes the app serves, with the
limits of the settings it runs with, and is a loadable OpenAPI 3.1 document."""

from __future__ import annotations

import dataclasses

import orjson
import schemathesis
from starlette.routing import Route

from collab import api
from collab.openapi import ROUTE, openapi_document
from collab.settings import Settings

OPERATIONAL = {("/livez", "get"), ("/readyz", "get"), ("/metrics", "get")}


def _served() -> set[tuple[str, str]]:
    out = set(OPERATIONAL)
    for route in [*api.routes_for(Settings()), ROUTE]:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET route
                out.add((route.path, method.lower()))
    return out


def test_every_route_is_described_and_nothing_else() -> None:
    doc = openapi_document(Settings())
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert described == _served()


def test_limits_follow_settings() -> None:
    settings = dataclasses.replace(
        Settings(), max_title_chars=17, max_note_chars=99, min_password_chars=11
    )
    schemas = openapi_document(settings)["components"]["schemas"]
    assert schemas["NewNote"]["properties"]["title"]["maxLength"] == 17
    assert schemas["NewNote"]["properties"]["content"]["maxLength"] == 99
    assert schemas["Registration"]["properties"]["password"]["minLength"] == 11


def test_document_loads_as_openapi_31() -> None:
    doc = orjson.loads(orjson.dumps(openapi_document(Settings())))
    schema = schemathesis.openapi.from_dict(doc)
    operations = [op.ok() for op in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == len(_served())
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds are unique (links refer to them)"


def test_public_operations_are_marked_and_the_rest_need_a_bearer() -> None:
    doc = openapi_document(Settings())
    paths = doc["paths"].items()
    public = {path for path, ops in paths for op in ops.values() if op.get("security") == []}
    assert public == {
        "/api/config", "/api/auth/login", "/api/auth/register", "/api/auth/guest",
        "/api/openapi.json", "/livez", "/readyz", "/metrics",
    }  # fmt: skip
    assert doc["security"] == [{"bearer": []}]
