"""Rate limiting and abuse counting, driven by a fake clock."""

from __future__ import annotations

from collab.protocol import AbuseCounter, KeyedBuckets, TokenBucket


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.4)
    assert bucket.take(0.5)  # 0.5 s x 2/s = one token back
    assert bucket.take(10.0) and bucket.take(10.0) and bucket.take(10.0)
    assert not bucket.take(10.0), "never more than the burst banked"


def test_keyed_buckets_are_independent_and_bounded() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1, max_keys=10)
    assert buckets.take("a", 0.0) and not buckets.take("a", 0.0)
    assert buckets.take("b", 0.0)
    for i in range(50):
        buckets.take(f"k{i}", float(i))
    assert len(buckets.buckets) <= 10


def test_abuse_counter() -> None:
    counter = AbuseCounter(limit=2)
    assert [counter.strike() for _ in range(3)] == [False, False, True]


def test_client_address_trusts_only_proxies() -> None:
    from collab.protocol import client_address
    from collab.settings import Settings

    trusted = Settings().proxy_networks()
    assert client_address("127.0.0.1", "203.0.113.9", trusted) == "203.0.113.9"
    # Only loopback by default: a private range is not a trusted proxy unless
    # configured (any pod or NAT could claim a client address).
    assert client_address("172.20.1.1", "203.0.113.9", trusted) == "172.20.1.1"
    assert client_address("198.51.100.7", "203.0.113.9", trusted) == "198.51.100.7"
    assert client_address("198.51.100.7", None, trusted) == "198.51.100.7"
    assert client_address("10.0.0.5", "1.2.3.4", ()) == "10.0.0.5", "nobody trusted"
