"""A real nginx running the gateway/ configuration on loopback ports, for the
gateway tests: only the upstream servers and the listener are rewritten."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
ASSET = "assets/app-3f2a9c1d.js"
INDEX_HTML = "<!doctype html><title>collab</title><div id=root></div>\n"
SECURITY_HEADERS = (
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "content-security-policy",
)


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail("nginx is not installed: apt-get install -y nginx")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_loopback_gateway(prefix: Path, upstream_ports: list[int], listen_port: int) -> Path:
    """Copy gateway/ into PREFIX/conf with the replicas replaced by 127.0.0.1 ports and
    the listener moved to 127.0.0.1:LISTEN_PORT; create PREFIX/tmp and PREFIX/html.
    Returns the nginx.conf to pass with `-p PREFIX/ -c`."""
    conf = prefix / "conf"
    conf.mkdir(parents=True)
    (prefix / "tmp").mkdir()
    (prefix / "html").mkdir()
    for source in GATEWAY.glob("*.conf"):
        shutil.copyfile(source, conf / source.name)
    shutil.copyfile("/etc/nginx/mime.types", conf / "mime.types")

    upstream = conf / "collab-upstream.conf"
    lines = upstream.read_text().splitlines(keepends=True)
    replicas = [i for i, line in enumerate(lines) if re.match(r"\s*server \S+:8000\b", line)]
    assert len(replicas) >= 2, "collab-upstream.conf lost its server lines"
    loopback = [f"    server 127.0.0.1:{p} max_fails=2 fail_timeout=10s;\n" for p in upstream_ports]
    lines[replicas[0] : replicas[-1] + 1] = loopback
    upstream.write_text("".join(lines))

    server = conf / "collab-server.conf"
    text, count = re.subn(r"listen 8080\b", f"listen 127.0.0.1:{listen_port}", server.read_text())
    assert count == 1, "collab-server.conf must listen on 8080 exactly once"
    server.write_text(text)
    return conf / "nginx.conf"


def nginx_command(conf: Path, *extra: str) -> list[str]:
    return [nginx_binary(), "-p", f"{conf.parent.parent}/", "-c", str(conf), "-e", "stderr", *extra]


@contextlib.asynccontextmanager
async def running_gateway(prefix: Path, upstream_ports: list[int]) -> AsyncIterator[str]:
    """A live loopback gateway over UPSTREAM_PORTS with a fake client build; yields its
    base URL and stops it (SIGQUIT, then SIGKILL) afterwards."""
    port = free_port()
    conf = write_loopback_gateway(prefix, upstream_ports, port)
    (prefix / "html" / "index.html").write_text(INDEX_HTML)
    (prefix / "html" / "assets").mkdir()
    (prefix / "html" / ASSET).write_text("console.log('collab');\n")
    async with _serve(conf, port, prefix / "nginx.log") as base:
        yield base


@contextlib.asynccontextmanager
async def gateway_with_client(
    prefix: Path, upstream_ports: list[int], client: Path
) -> AsyncIterator[str]:
    """A live loopback gateway serving the built client from CLIENT."""
    port = free_port()
    conf = write_loopback_gateway(prefix, upstream_ports, port)
    shutil.rmtree(prefix / "html")
    shutil.copytree(client, prefix / "html")
    async with _serve(conf, port, prefix / "nginx.log") as base:
        yield base


@contextlib.asynccontextmanager
async def _serve(conf: Path, port: int, log: Path) -> AsyncIterator[str]:
    with log.open("w") as sink:
        proc = await asyncio.create_subprocess_exec(
            *nginx_command(conf), stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    try:
        for _ in range(250):
            if proc.returncode is not None:
                pytest.fail(await asyncio.to_thread(log.read_text))
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            break
        else:
            pytest.fail(f"nginx did not listen on {port}: {await asyncio.to_thread(log.read_text)}")
        yield f"127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGQUIT)
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
