"""A share of a projection's keys, so that one replay can be split across processes.

Every row of a projection depends only on the events that touch its key (Projection.apply takes one
row, one event, one key). So the keys can be dealt out between replays, each reading the same events
and applying each only to the keys it holds: together they write every row once, as one replay would.
The longest replay of a rebuild (calls with recordings, which read the call events too) is split this
way across the rebuild's processes, where it would otherwise run on one core while the others idle.
"""

from __future__ import annotations

import zlib

from msgspec import Struct

from projections.model import Key

__all__ = ["Part"]


class Part(Struct, frozen=True):
    """Part `index` of `count` (0 <= index < count): the keys whose hash modulo `count` is `index`."""

    index: int
    count: int

    def holds(self, key: Key) -> bool:
        # CRC-32 of the key's text: the same in every process (str's hash() is not), and cheap.
        text = "\x1f".join(map(str, key)).encode("utf-8", "surrogatepass")
        return zlib.crc32(text) % self.count == self.index

    def __str__(self) -> str:
        return f"part {self.index + 1} of {self.count}"
