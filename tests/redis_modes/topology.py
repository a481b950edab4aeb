"""Throwaway Redis topologies on free loopback ports: a master with a replica
watched by three sentinels, and a Redis Cluster of three masters with one
replica each. Built from the same ``redis-server`` the other suites start
(``tests/support/services.py``), in temp dirs, killable node by node."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from collab.redis_client import RedisClientOptions, open_redis
from tests.support.faultproxy import FaultProxy
from tests.support.services import RedisServer, free_port, wait_port

SENTINEL_MASTER = "collab-master"
# Short detection so a failover completes in a few seconds.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
CLUSTER_NODE_TIMEOUT_MS = 1000


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/bin/{name}"


class RedisNode(RedisServer):
    """A ``redis-server`` with extra arguments, or a config file first (a
    sentinel needs one it can rewrite)."""

    def __init__(self, extra: list[str], config: str | None = None) -> None:
        super().__init__()
        self.extra = extra
        self.config = config

    def start(self) -> RedisNode:
        args = [_exe("redis-server")]
        if self.config is not None:
            conf = self.dir / "node.conf"
            if not conf.exists():
                conf.write_text(self.config)
            args.append(str(conf))
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir), *self.extra]  # fmt: skip
        logf = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf, start_new_session=True)
        wait_port("127.0.0.1", self.port, 15)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=2)  # fmt: skip

    def restart(self) -> None:
        """Start again on the same port and dir (a sentinel keeps its config)."""
        self.kill()
        self.start()


def _wait(what: str, check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # a node still starting
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout}s (last error: {last!r})")


class SentinelSetup:
    """One master, one replica, three sentinels (quorum two)."""

    def __init__(self, replica_via_proxy: bool = False) -> None:
        # Either may become the master: both sync a new replica at once.
        self.master = RedisNode(["--repl-diskless-sync-delay", "0"])
        self.replica = RedisNode([])
        self.sentinels: list[RedisNode] = []
        # The replica's replication link through a FaultProxy, to make it
        # miss the newest writes on demand (``proxy.blackhole()``).
        self.proxy: FaultProxy | None = None
        self._replica_via_proxy = replica_via_proxy

    def start(self) -> SentinelSetup:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.master.start()
        upstream = self.master.port
        if self._replica_via_proxy:
            self.proxy = FaultProxy(self.master.port).start()
            upstream = self.proxy.port
        self.replica.extra = ["--replicaof", "127.0.0.1", str(upstream),
                              "--repl-diskless-sync-delay", "0"]  # fmt: skip
        self.replica.start()
        _wait("replica in sync", lambda: self.replica.client().info("replication")
              ["master_link_status"] == "up")  # fmt: skip
        for _ in range(3):
            port = free_port()
            config = (
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SENTINEL_MASTER} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
            )
            node = RedisNode(["--sentinel"], config=config)
            node.port = port
            self.sentinels.append(node.start())
        _wait("sentinels see each other and the replica", self._sentinels_ready)

    def _sentinels_ready(self) -> bool:
        for s in self.sentinels:
            info = s.client().execute_command("SENTINEL", "MASTER", SENTINEL_MASTER)
            if isinstance(info, list):
                info = dict(zip(info[::2], info[1::2], strict=True))
            fields = info
            if int(fields["num-other-sentinels"]) < 2 or int(fields["num-slaves"]) < 1:
                return False
        return True

    @property
    def url(self) -> str:
        return ",".join(f"redis://127.0.0.1:{s.port}" for s in self.sentinels)

    def master_port(self) -> int:
        _host, port = (
            self.sentinels[0]
            .client()
            .execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER)
        )
        return int(port)

    def node(self, port: int) -> RedisNode:
        return next(n for n in (self.master, self.replica) if n.port == port)

    def failover(self, *, kill: bool = False, timeout: float = 30.0) -> int:
        """Move the master: ``SENTINEL FAILOVER``, or kill the master and let
        the sentinels agree it is down. Returns the new master's port once
        every sentinel names it and it answers as a master."""
        old = self.master_port()
        if kill:
            self.node(old).kill()
        else:
            self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", SENTINEL_MASTER)

        def moved() -> bool:
            ports = set(self._named_ports())
            if len(ports) != 1 or old in ports:
                return False
            new = ports.pop()
            return self.node(new).client().info("replication")["role"] == "master"

        _wait("a new master", moved, timeout)
        return self.master_port()

    def restart_lost_node(self) -> None:
        """Start a killed node again (empty: no persistence); the sentinels
        make it a replica of the current master."""
        master = self.master_port()
        for node in (self.master, self.replica):
            if node.proc is None:
                node.extra = ["--replicaof", "127.0.0.1", str(master),
                              "--repl-diskless-sync-delay", "0"]  # fmt: skip
                node.start()
        _wait("a replica in sync that every sentinel may promote", self._replica_ready, 60)

    def _replica_ready(self) -> bool:
        for s in self.sentinels:
            replicas = s.client().execute_command("SENTINEL", "REPLICAS", SENTINEL_MASTER)
            good = []
            for r in replicas:
                if isinstance(r, list):
                    r = dict(zip(r[::2], r[1::2], strict=True))
                good.append(r["flags"] == "slave" and r.get("master-link-status") == "ok")
            if not any(good):
                return False
        return True

    def _named_ports(self) -> list[int]:
        out = []
        for s in self.sentinels:
            with contextlib.suppress(Exception):
                _host, port = s.client().execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER
                )
                out.append(int(port))
        return out

    def stop(self) -> None:
        for node in (*self.sentinels, self.master, self.replica):
            with contextlib.suppress(Exception):
                node.stop()
        if self.proxy is not None:
            self.proxy.stop()


class ClusterSetup:
    """Three masters with one replica each, created by ``redis-cli --cluster``."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.nodes = [RedisNode([]) for _ in range(masters * (1 + replicas))]
        self.replicas = replicas
        for node in self.nodes:
            node.extra = ["--cluster-enabled", "yes",
                          "--cluster-config-file", str(node.dir / "nodes.conf"),
                          "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                          # A replica's first sync at once, not after 5 s: one
                          # that never synced cannot take over.
                          "--repl-diskless-sync-delay", "0",
                          # The bus port defaults to port + 10000, which may be taken
                          # or out of range for a free port from the kernel.
                          "--cluster-port", str(free_port())]  # fmt: skip

    def start(self) -> ClusterSetup:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [_exe("redis-cli"), "--cluster", "create", *addresses,
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        _wait("cluster state ok on every node", self._ok, 60)
        _wait("every replica in sync", self._replicas_synced, 60)

    def _replicas_synced(self) -> bool:
        infos = [n.client().info("replication") for n in self.nodes if n.proc is not None]
        replicas = [i for i in infos if i["role"] == "slave"]
        return len(replicas) == len(self.nodes) // (1 + self.replicas) * self.replicas and all(
            i["master_link_status"] == "up" for i in replicas
        )

    def _ok(self) -> bool:
        for node in self.nodes:
            if node.proc is None:
                continue
            if node.client().execute_command("CLUSTER", "INFO").find("cluster_state:ok") < 0:
                return False
        return True

    @property
    def url(self) -> str:
        return ",".join(f"redis://127.0.0.1:{n.port}" for n in self.nodes[:3])

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="collab-redis-topology-"))


_shared: dict[str, ClusterSetup] = {}


def _stop_shared() -> None:
    for setup in _shared.values():
        with contextlib.suppress(Exception):
            setup.stop()


atexit.register(_stop_shared)


def redis_cluster_url() -> str:
    """The seed nodes of a Redis Cluster shared by this test run (started on
    first use, stopped at exit). Tests keep to their own key prefixes."""
    if "cluster" not in _shared:
        _shared["cluster"] = ClusterSetup().start()
    return _shared["cluster"].url


CLUSTER_OPTIONS = RedisClientOptions(mode="cluster")


async def delete_cluster_prefix(url: str, prefix: str) -> None:
    """Delete ``prefix``'s keys on every master of the cluster."""
    client = open_redis(url, CLUSTER_OPTIONS)
    assert isinstance(client, RedisCluster)
    try:
        # SCAN on a cluster client walks every master.
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=500)]
        for key in keys:
            await client.delete(key)
    finally:
        await client.aclose()


def cluster_node_of(setup: ClusterSetup, key: str) -> RedisNode:
    """The master serving ``key``'s slot now."""
    slot = key_slot(key.encode())
    for node in setup.nodes:
        if node.proc is None:
            continue
        for start, end, master, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(n for n in setup.nodes if n.port == int(master[1]))
    raise LookupError(slot)


def kill_master_of(setup: ClusterSetup, key: str) -> RedisNode:
    """Kill the master serving ``key`` and wait until its replica took over
    and every live node sees the cluster whole again."""
    victim = cluster_node_of(setup, key)
    victim.kill()

    def taken_over() -> bool:
        return cluster_node_of(setup, key) is not victim and setup._ok()

    _wait("the replica took over", taken_over, 30)
    return victim


def migrate_slot_of(setup: ClusterSetup, key: str) -> tuple[RedisNode, RedisNode]:
    """Move ``key``'s slot, with its keys, to another master (the steps of
    ``redis-cli --cluster reshard`` for one slot). Returns (from, to)."""
    slot = key_slot(key.encode())
    source = cluster_node_of(setup, key)
    target = next(
        n for n in setup.nodes
        if n.proc is not None and n is not source
        and n.client().info("replication")["role"] == "master"
    )  # fmt: skip
    src, dst = source.client(), target.client()
    src_id, dst_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
    for node in setup.nodes:
        if node.proc is not None and node.client().info("replication")["role"] == "master":
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    _wait("every node agrees on the move", lambda: cluster_node_of(setup, key) is target)
    return source, target
