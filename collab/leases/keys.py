"""Redis key names. Every key of one note embeds the hash tag ``{note-id}`` so
all of a note's keys map to one Redis Cluster slot and each Lua script touches
a single slot (rule 11)."""

from __future__ import annotations

from dataclasses import dataclass

from collab.redis_client import note_key_base


@dataclass(frozen=True)
class LeaseKeys:
    lease: str
    fence: str
    holder: str
    last: str
    queue: str
    qseq: str
    waiter_prefix: str

    @classmethod
    def of(cls, prefix: str, note_id: str) -> LeaseKeys:
        base = note_key_base(prefix, note_id)
        return cls(
            lease=base + "lease",
            fence=base + "fence",
            holder=base + "holder",
            last=base + "last",
            queue=base + "queue",
            qseq=base + "qseq",
            waiter_prefix=base + "waiter:",
        )

    def waiter(self, session: str) -> str:
        return self.waiter_prefix + session

    def all_for(self, session: str) -> tuple[str, ...]:
        """Every key of the note a script may touch for ``session``."""
        return (
            self.lease,
            self.fence,
            self.holder,
            self.last,
            self.queue,
            self.qseq,
            self.waiter(session),
        )
