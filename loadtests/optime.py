"""Edit op ids that carry their send time.

The protocol lets the client choose each edit's ``op`` (any UUID). The load
tools use UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then the 12
``rand_a`` bits hold the sub-millisecond fraction (the RFC's "increased clock
precision" method 3), then 62 random bits. A viewer that receives the
``edited`` push reads the writer's send time straight from ``op``, so fan-out
latency needs no side channel between driver processes. Both ends must read
the same wall clock: true on one host; across hosts it includes clock skew.
"""

from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7
_VARIANT_RFC = 0b10
_FRACTION_STEPS = 4096  # 12 bits of sub-millisecond precision (~0.24 us)


def timed_op(now_ns: int | None = None) -> str:
    """A fresh UUIDv7 string stamped with ``now_ns`` (default: ``time.time_ns()``)."""
    ns = time.time_ns() if now_ns is None else now_ns
    ms, sub_ns = divmod(ns, 1_000_000)
    fraction = sub_ns * _FRACTION_STEPS // 1_000_000
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (_VERSION_7 << 76) | (fraction << 64) | (_VARIANT_RFC << 62) | rand
    return str(uuid.UUID(int=value))


def op_time_ns(op: str) -> int | None:
    """The send time stamped by ``timed_op``, or None for any other op id."""
    try:
        value = uuid.UUID(op).int
    except (ValueError, TypeError, AttributeError):
        return None
    if (value >> 76) & 0xF != _VERSION_7:
        return None
    ms = value >> 80
    fraction = (value >> 64) & 0xFFF
    return ms * 1_000_000 + fraction * 1_000_000 // _FRACTION_STEPS
