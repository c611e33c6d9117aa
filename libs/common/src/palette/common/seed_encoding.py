"""Seed files are UTF-8: what their first bytes and every later byte must show.

A UTF-8 byte-order mark is dropped; a UTF-16 or UTF-32 file (with or without
its byte-order mark) and any byte that is not UTF-8 are refused with a
message that names the encoding problem and where it is, before a parser
sees the bytes.
"""

from __future__ import annotations

import codecs
import io
from typing import Any

UTF8_BOM = codecs.BOM_UTF8
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class EncodingProblem(ValueError):
    """Bytes that are not UTF-8 text, with the line they are on when known."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def _utf16_without_bom(head: bytes) -> bool:
    """NUL bytes between characters: one byte in two (even or odd) is mostly NUL."""
    if len(head) < 2 or 0 not in head:
        return False
    even, odd = head[0::2].count(0), head[1::2].count(0)
    many, few = max(even, odd), min(even, odd)
    return many * 4 >= len(head) // 2 and few * 10 <= many


def strip_utf8_bom(head: bytes) -> bytes:
    """The first bytes of a file without a UTF-8 byte-order mark.

    Raises:
        EncodingProblem: when the file is UTF-16 or UTF-32, with or without a
            byte-order mark.
    """
    for bom, name in _BOMS:
        if head.startswith(bom):
            raise EncodingProblem(f"seed file is {name} (byte-order mark), not UTF-8")
    if _utf16_without_bom(head):
        raise EncodingProblem(
            "seed file looks like UTF-16 (NUL bytes between characters), not UTF-8"
        )
    return head.removeprefix(UTF8_BOM)


class Utf8Checked(io.RawIOBase):
    """A binary stream whose bytes are checked to be UTF-8 as they are read.

    Raises ``EncodingProblem`` naming the first bad byte, its offset in the
    file and its line, before handing on the chunk that holds it.
    """

    def __init__(self, source: Any, offset: int = 0) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._offset = offset
        self._lines = 1

    def readable(self) -> bool:
        """Always: this is a stream to read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read the next bytes of the source into ``buffer`` once they are checked."""
        view = memoryview(buffer)
        data = self._source.read(len(view))
        self._check(data)
        view[: len(data)] = data
        return len(data)

    def _check(self, data: bytes) -> None:
        pending = self._decoder.getstate()[0]
        try:
            self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            seen = pending + data
            start = self._offset - len(pending) + exc.start
            # pending bytes are the start of one character: never a newline
            line = self._lines + data[: max(exc.start - len(pending), 0)].count(b"\n")
            raise EncodingProblem(
                f"byte 0x{seen[exc.start]:02x} at offset {start} is not UTF-8", line=line
            ) from exc
        self._offset += len(data)
        self._lines += data.count(b"\n")
