"""Where records live during a run: in memory, or spooled to disk with only offsets in memory.

Grouping needs random access to every record of an epoch in shuffled order. Small inputs stay
in a list; large ones are spooled to a temporary file and read back with ``os.pread``, so the
process holds a few integers per record instead of its text (the page cache holds the text, not
the process), and the peak memory does not grow with the size of the records' text.
"""

from __future__ import annotations

import gc
import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from mosaic_it.io.jsoncodec import dumps_bytes, loads
from mosaic_it.records import Record

# what a run may hold of records in memory before it spools them to disk: their characters of
# text and RECORD_OVERHEAD for each (125 million: about 105,000 Alpaca records, or 300,000
# records of a few words; 104,004 Alpaca records stay in memory)
SPOOL_THRESHOLD = 125_000_000
# what a record held in memory costs beyond its characters (counted with the text towards
# SPOOL_THRESHOLD): its object, its strings' headers and its two summaries, about 400 bytes;
# without it a million records of a few words each stayed in memory, 400 MB of objects
RECORD_OVERHEAD = 400


def release_freed_memory() -> None:
    """Hand the heap's freed pages back to the system (glibc's ``malloc_trim``), so that the
    text of records just spooled stops counting against the process and the workers it forks."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the pages are reused by the process instead
        pass


# young objects between two collections of the youngest generation while a run reads or groups
# (Python's default is 700)
YOUNG_COLLECTION_THRESHOLD = 100_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the youngest generation every :data:`YOUNG_COLLECTION_THRESHOLD` new objects,
    not every 700, within the block; the thresholds are as they were after it.

    Reading keeps every record it makes (a collection only walks them again), and grouping
    makes samples whose objects die young by reference counting: at Python's thresholds the
    collector took 14% of the parent's CPU while reading 52k records and 5% of each epoch's,
    and found next to nothing to free."""
    old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class DiskStore(Sequence[Record]):
    """An append-then-read sequence of records kept in an unlinked temporary file."""

    def __init__(self, directory: str | None = None) -> None:
        fd, path = tempfile.mkstemp(prefix="mosaic-it-records-", suffix=".spool", dir=directory)
        os.unlink(path)  # vanishes with the process, whatever happens
        self._fd = fd
        self._offsets = array("q", [0])
        # copied here at once: each line orjson gives holds a 4 kB allocation whatever its
        # length, 400 MB for 100,000 short records in a list of them
        self._buffer = bytearray()

    def append(self, record: Record) -> None:
        data = dumps_bytes(
            [record.id, record.instruction, record.output, record.input, record.system]
        )
        self._buffer += data
        self._offsets.append(self._offsets[-1] + len(data))
        if len(self._buffer) > 1 << 22:
            self.flush()

    def extend(self, records: Iterable[Record]) -> None:
        for r in records:
            self.append(r)

    def flush(self) -> None:
        if self._buffer:
            with memoryview(self._buffer) as data:
                view = data
                while view:
                    view = view[os.write(self._fd, view) :]
                del view
            self._buffer.clear()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> Record:  # type: ignore[override]  # no slices
        if self._buffer:
            self.flush()
        start, end = self._offsets[index], self._offsets[index + 1]
        rid, instruction, output, text_input, system = loads(os.pread(self._fd, end - start, start))
        return Record(rid, instruction, output, text_input, system)

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


class SeenHashes:
    """The distinct 64-bit hashes met so far (the records' ids'): a set while they are few
    (fast), then an open-addressing table of machine integers, 8 to 19 bytes a hash, where a
    set takes about 60 (its slot and an int object each): 600 MB over ten million records."""

    IN_A_SET = 250_000  # hashes kept in a set (15 MB) before they move to the table
    MAX_LOAD = 0.7  # the table doubles past this share of its slots in use

    def __init__(self) -> None:
        self._set: set[int] | None = set()
        self._table = array("q", bytes(8 * 1024))
        self._used = 0
        self._zero = False  # 0 marks an empty slot: the hash 0 is kept apart

    def add_many(self, hashes: Iterable[int]) -> int:
        """Add ``hashes``; returns how many of them were met before (among themselves too)."""
        if self._set is not None:
            batch = list(hashes)
            before = len(self._set)
            self._set.update(batch)
            again = len(batch) - (len(self._set) - before)
            if len(self._set) > self.IN_A_SET:
                kept, self._set = self._set, None
                self._into_table(kept)
            return again
        return self._into_table(hashes)

    def _into_table(self, hashes: Iterable[int]) -> int:
        again = 0
        table = self._table
        mask = len(table) - 1
        limit = int(len(table) * self.MAX_LOAD)
        for h in hashes:
            if h == 0:
                again += self._zero
                self._zero = True
                continue
            i = h & mask
            while True:
                v = table[i]
                if v == 0:
                    table[i] = h
                    self._used += 1
                    if self._used > limit:
                        table = self._grow()
                        mask = len(table) - 1
                        limit = int(len(table) * self.MAX_LOAD)
                    break
                if v == h:
                    again += 1
                    break
                i = (i + 1) & mask
        return again

    def _grow(self) -> array:
        old = self._table
        table = self._table = array("q", bytes(16 * len(old)))
        mask = len(table) - 1
        for h in old:
            if h:
                i = h & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = h
        return table

    def __len__(self) -> int:
        if self._set is not None:
            return len(self._set)
        return self._used + self._zero
