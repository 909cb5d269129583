"""A Bloom filter of fixed size: "certainly never added" or "maybe added", in memory that does not
grow with the number of keys added.

One hash function (the key's own `hash`), so a test costs one hash and one byte. With n keys in m
bits a test of a key never added says "maybe" with probability about n/m: 0.7 % for 250,000 keys in
the default 4 MiB, a quarter for ten million. A "maybe" is only ever a cue to look the key up, so a
fuller filter costs lookups, never a wrong answer. `hash` of a string differs between processes: a
filter is only good in the process that filled it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

__all__ = ["Bloom"]


class Bloom:
    def __init__(self, size_bytes: int = 4 << 20) -> None:
        if size_bytes <= 0 or size_bytes & (size_bytes - 1):
            raise ValueError(f"a Bloom filter's size is a power of two, not {size_bytes}")
        self._bits = bytearray(size_bytes)
        self._mask = size_bytes * 8 - 1

    def add(self, keys: Iterable[Hashable]) -> None:
        bits, mask = self._bits, self._mask
        for key in keys:
            bit = hash(key) & mask
            bits[bit >> 3] |= 1 << (bit & 7)

    def __contains__(self, key: Hashable) -> bool:
        bit = hash(key) & self._mask
        return bool(self._bits[bit >> 3] & (1 << (bit & 7)))
