"""A signed-out token, or one from before a password change, stops a live
socket too, on whichever replica it is (docs/security.md): the socket closes
4401, while the user's other sign-ins keep theirs."""

from __future__ import annotations

import pytest

from tests.support.client import Api, WsClient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.parametrize("backend_env", ["embedded", "distributed"], indirect=True)
PASSWORD = "pw-sign-out-1"


async def test_logout_closes_the_sockets_of_that_token_only(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    api = await Api.register(first.url, password=PASSWORD)
    other = Api(second.url)  # a second sign-in of the same account (another device)
    login = {"username": api.user["name"], "password": PASSWORD}
    other.token = (await other.ok("POST", "/api/auth/login", login))["token"]
    signed_out = await WsClient.signed_in(second.ws_url, api.token)
    kept = await WsClient.signed_in(second.ws_url, other.token)
    await api.call("POST", "/api/auth/logout")
    code, reason = await signed_out.wait_closed(5)
    assert code == 4401 and "signed out" in reason
    assert (await kept.request("heartbeat"))["type"] == "heartbeat_ack"
    await kept.close()


async def test_a_password_change_closes_the_older_sign_ins(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    api = await Api.register(first.url, password=PASSWORD)
    old = await WsClient.signed_in(second.ws_url, api.token)
    changed = await api.ok(
        "POST", "/api/auth/password",
        {"current_password": PASSWORD, "new_password": PASSWORD + "-new"},
    )  # fmt: skip
    code, _ = await old.wait_closed(5)
    assert code == 4401
    fresh = await WsClient.signed_in(second.ws_url, changed["token"])
    assert (await fresh.request("heartbeat"))["type"] == "heartbeat_ack"
    await fresh.close()
