"""What every scenario shares: the stack, the accounts, CPU metering of
servers and drivers, and writing results as JSON for ``loadtests/plot.py``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.harness import stats
from loadtests.harness.drivers import Pool, Worker
from loadtests.harness.stack import Stack
from loadtests.harness.wsclient import create_note, grant_write, register_many


@dataclass
class Account:
    token: str
    user_id: str


@dataclass
class Bench:
    stack: Stack
    out_dir: Path
    drivers: int
    accounts: list[Account] = field(default_factory=list)
    env_overrides: dict[str, str] = field(default_factory=dict)

    def register(self, count: int) -> None:
        """``count`` fresh accounts (a unique name prefix per run). The peer
        has no accounts: any non-empty token opens a document there."""
        prefix = "bench" + uuid.uuid4().hex[:6]
        if self.stack.proto == "peer":
            self.accounts = [Account(f"{prefix}-{i}", str(i)) for i in range(count)]
            return
        pairs = asyncio.run(register_many(self.stack.url(0), count, prefix))
        self.accounts = [Account(t, u) for t, u in pairs]

    @property
    def owner(self) -> Account:
        return self.accounts[0]

    def tokens(self, skip: int = 1) -> list[str]:
        return [a.token for a in self.accounts[skip:]] or [self.owner.token]

    def new_note(self, owner: Account | None = None, share_with: list[Account] = ()) -> str:  # type: ignore[assignment]
        owner = owner or self.owner
        if self.stack.proto == "peer":  # a document exists once someone opens it
            return "bench-" + uuid.uuid4().hex

        async def make() -> str:
            note = await create_note(self.stack.url(0), owner.token)
            for acc in share_with:
                await grant_write(self.stack.url(0), owner.token, note, acc.user_id)
            return note

        return asyncio.run(make())

    def pool(self, role: str, specs: list[dict[str, Any]]) -> Pool:
        return Pool([Worker(role, spec) for spec in specs])

    def meter(self, *pools: tuple[str, Pool], parent: bool = False) -> stats.CpuMeter:
        pids = dict(self.stack.pid_labels())
        for label, pool in pools:
            pids.update(pool.pids(label))
        if parent:
            pids["driver_parent"] = os.getpid()
        return stats.CpuMeter(pids)

    def save(self, scenario: str, results: Any) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{scenario}-{self.stack.kind}.json"
        doc = {
            "scenario": scenario,
            "stack": self.stack.kind,
            "replicas": len(self.stack.urls),
            "command": "python -m loadtests.harness " + " ".join(sys.argv[1:]),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": stats.machine(),
            "env_overrides": self.env_overrides,
            "results": results,
        }
        path.write_text(json.dumps(doc, indent=1) + "\n")
        return path


def cores_summary(cpu: dict[str, Any]) -> str:
    """``server1=0.93 driver=1.10`` cores (summing each group's processes)."""
    groups: dict[str, float] = {}
    for label, value in cpu.items():
        if isinstance(value, dict):
            group = label.rstrip("0123456789")
            groups[group] = groups.get(group, 0.0) + value["cores"]
    return " ".join(f"{k}={v:.2f}" for k, v in sorted(groups.items()))
