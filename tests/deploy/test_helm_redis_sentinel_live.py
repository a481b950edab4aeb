"""The chart's Sentinel-mode start scripts (files/redis-start.sh,
files/redis-sentinel-start.sh) with the rendered redis.conf, on real Redis:
three "pods" on 127.0.0.2-4 (port 6379 and 26379 each), their DNS names
(``<name>-<i>.<domain>``) mapped by a private /etc/hosts in a mount namespace,
as on Kubernetes. Pod 0 starts as master on a fresh install, the others as its
replicas, the sentinels find each other; after pod 0's Redis is killed the
sentinels promote a replica, and pod 0, started again, asks them and rejoins as
a replica of the new master instead of starting a second, empty master."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.deploy import helm_support as hs
from tests.support.services import wait_port

NAME, DOMAIN, MASTER, PASSWORD = "r", "r.ns.svc", "collab", "pw-Live7"
PODS = 3

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("redis-server") is None,
    reason="needs root (a private /etc/hosts per process), unshare and redis-server",
)


def _ip(i: int) -> str:
    return f"127.0.0.{2 + i}"


class Pods:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        hosts = "".join(f"{_ip(i)} {NAME}-{i}.{DOMAIN}\n" for i in range(PODS))
        (root / "hosts").write_text("127.0.0.1 localhost\n" + hosts)
        (root / "password").write_text(PASSWORD)
        docs = hs.render(hs.ci_profiles()["bundled"])
        config = hs.only(docs, "ConfigMap", "-redis")["data"]
        for i in range(PODS):
            pod = root / f"pod{i}"
            (pod / "data").mkdir(parents=True)
            (pod / "sentinel").mkdir()
            conf = config["redis.conf"].replace("bind * -::*", f"bind {_ip(i)}")
            (pod / "redis.conf").write_text(conf.replace("dir /data", f"dir {pod / 'data'}"))

    def env(self, i: int) -> dict[str, str]:
        pod = self.root / f"pod{i}"
        return dict(os.environ) | {
            "REDIS_PASSWORD_FILE": str(self.root / "password"), "REDIS_NAME": NAME,
            "REDIS_DOMAIN": DOMAIN, "REDIS_REPLICAS": str(PODS), "SENTINEL_MASTER": MASTER,
            "POD_NAME": f"{NAME}-{i}", "REDIS_CONF": str(pod / "redis.conf"),
            "SENTINEL_QUORUM": "2", "SENTINEL_DOWN_AFTER_MS": "1000",
            "SENTINEL_FAILOVER_TIMEOUT_MS": "3000", "SENTINEL_DIR": str(pod / "sentinel"),
            "SENTINEL_BIND": _ip(i),
        }  # fmt: skip

    def start(self, what: str, i: int) -> None:
        script = (
            hs.CHART_DIR / "files" / f"{'redis' if what == 'redis' else 'redis-sentinel'}-start.sh"
        )
        inner = f'mount --bind {self.root / "hosts"} /etc/hosts && exec "$@"'
        log = open(self.root / f"pod{i}" / f"{what}.log", "ab")  # noqa: SIM115 - the child's
        self.procs[(what, i)] = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", inner, "sh", "sh", str(script)], env=self.env(i),
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        wait_port(_ip(i), 6379 if what == "redis" else 26379, 15)

    def kill(self, what: str, i: int) -> None:
        proc = self.procs.pop((what, i))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for key in list(self.procs):
            self.kill(*key)


def client(i: int, sentinel: bool = False) -> redis.Redis:
    return redis.Redis(host=_ip(i), port=26379 if sentinel else 6379, password=PASSWORD,
                       decode_responses=True, socket_timeout=2)  # fmt: skip


def wait(what: str, check: Callable[[], bool], limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def masters_named() -> set[str]:
    names = set()
    for i in range(PODS):
        with contextlib.suppress(redis.RedisError):
            host, _port = client(i, sentinel=True).execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
            )
            names.add(host)
    return names


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Pods]:
    p = Pods(tmp_path)
    try:
        yield p
    finally:
        p.stop()


def test_pods_elect_fail_over_and_a_restarted_master_rejoins_as_replica(pods: Pods) -> None:
    for i in range(PODS):
        pods.start("redis", i)
    for i in range(PODS):
        pods.start("sentinel", i)
    first = f"{NAME}-0.{DOMAIN}"
    assert client(0).info("replication")["role"] == "master"
    for i in (1, 2):
        wait(f"pod {i} replicating", lambda i=i: client(i).info("replication")
             ["master_link_status"] == "up")  # fmt: skip
        assert client(i).info("replication")["master_host"] == first

    def sentinels_ready() -> bool:
        for i in range(PODS):
            state = client(i, sentinel=True).execute_command("SENTINEL", "MASTER", MASTER)
            if isinstance(state, list):
                state = dict(zip(state[::2], state[1::2], strict=True))
            if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 2:
                return False
        return masters_named() == {first}

    wait("three sentinels watching one master and two replicas", sentinels_ready)
    assert client(0).set("k", "v")  # the write guard lets a master with replicas write

    pods.kill("redis", 0)
    wait("a replica promoted", lambda: len(masters_named()) == 1 and first not in masters_named())
    (new_master,) = masters_named()
    pods.start("redis", 0)
    info = client(0).info("replication")
    assert info["role"] == "slave" and info["master_host"] == new_master
    wait("pod 0 replicating from the new master",
         lambda: client(0).info("replication")["master_link_status"] == "up")  # fmt: skip
    assert client(0).get("k") == "v"
