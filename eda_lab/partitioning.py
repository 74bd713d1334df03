"""Which partition a key goes to: Kafka's default partitioner, byte for byte.

The partition must be the same on every run and every machine, or "order per key" means
nothing after a restart. Python's ``hash()`` of a string changes with every interpreter (hash
randomisation), so we use murmur2, the hash Kafka's Java client uses: a key lands on the same
partition here as it would on a real Kafka topic with the same partition count.
"""

from __future__ import annotations

from functools import lru_cache

from . import _validate as check

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: a 32-bit signed hash of ``data``."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length & ~3
    for i in range(0, whole, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key`` on a topic with ``partitions`` partitions (Kafka's formula)."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a string, got {key!r}")
    return _partition(key, check.count("partitions", partitions))


@lru_cache(maxsize=65536)
def _partition(key: str, partitions: int) -> int:
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
