"""The process memory in front of a cache backend: bounded by size, least recently used out first."""

from __future__ import annotations

import threading

import pytest

from regdata.cache.lru import LRU


def test_forgets_the_least_recently_used_past_its_bytes() -> None:
    lru = LRU(100)
    lru.put("a", "A", 40)
    lru.put("b", "B", 40)
    assert lru.get("a") == "A"  # now b is the oldest
    lru.put("c", "C", 40)
    assert lru.get("b") is None and lru.get("a") == "A" and lru.get("c") == "C"
    assert lru.bytes == 80 and len(lru) == 2


def test_a_value_larger_than_the_whole_is_not_kept_and_drops_the_old_one() -> None:
    lru = LRU(100)
    lru.put("a", "old", 10)
    lru.put("a", "huge", 101)
    assert lru.get("a") is None and lru.bytes == 0


def test_replacing_a_key_counts_its_size_once() -> None:
    lru = LRU(100)
    for size in (10, 30, 20):
        lru.put("a", size, size)
    assert lru.bytes == 20 and lru.get("a") == 20
    lru.pop("a")
    lru.pop("missing")
    assert lru.bytes == 0 and len(lru) == 0


def test_zero_keeps_nothing_and_negative_is_refused() -> None:
    lru = LRU(0)
    lru.put("a", "A", 1)
    assert lru.get("a") is None
    with pytest.raises(ValueError):
        LRU(-1)


def test_threads_keep_the_byte_count_right() -> None:
    lru = LRU(10_000)

    def work(n: int) -> None:
        for i in range(2_000):
            lru.put((n, i % 300), i, 7 + i % 5)
            lru.get((n, (i * 7) % 300))
            if i % 11 == 0:
                lru.pop((n, i % 300))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lru.bytes <= 10_000
    lru.clear()
    assert lru.bytes == 0 and len(lru) == 0
