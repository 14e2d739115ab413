"""The protobuf wire format, read by hand: enough to parse a SentencePiece ``.model`` file
without the ``protobuf`` package (see :mod:`.sentencepiece_bpe`).

A serialized message is a sequence of fields, each a key (field number and wire type, a
varint) and a value: a varint (wire type 0), a length-delimited payload (2: strings, bytes
and sub-messages) or a fixed-width little-endian value (1: 64 bits, 5: 32 bits). Groups (3/4)
are deprecated and not read.
"""

from __future__ import annotations

from collections.abc import Iterator


class ProtoError(Exception):
    """The bytes are not the message expected (the message says where they differ)."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtoError("varint too long")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a serialized protobuf message.

    Values: int for varints (wire type 0), bytes for length-delimited fields (2) and for
    fixed64/fixed32 fields (1/5, raw little-endian).  Groups (3/4) are not supported.
    """
    pos, end = 0, len(buf)
    value: int | bytes
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            if pos + size > end:
                raise ProtoError("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ProtoError("truncated fixed-width field")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        yield number, wire, value


def varint(wire: int, value: int | bytes, what: str) -> int:
    """A varint field's value; a wrong wire type means the file is not what we think."""
    if wire != 0 or not isinstance(value, int):
        raise ProtoError(f"{what} has wire type {wire}, expected a varint")
    return value


def int32(wire: int, value: int | bytes, what: str) -> int:
    """An int32 varint; negative values are encoded as 64-bit two's complement."""
    number = varint(wire, value, what)
    return number - (1 << 64) if number >= 1 << 63 else number


def flag(wire: int, value: int | bytes, what: str) -> bool:
    """A bool field (a varint)."""
    return bool(varint(wire, value, what))


def payload(wire: int, value: int | bytes, what: str) -> bytes:
    """A length-delimited field's payload (string, bytes or sub-message)."""
    if wire != 2 or not isinstance(value, bytes):
        raise ProtoError(f"{what} has wire type {wire}, expected length-delimited")
    return value


def text(wire: int, value: int | bytes, what: str) -> str:
    """A string field (length-delimited UTF-8)."""
    return utf8(payload(wire, value, what), what)


def utf8(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtoError(f"{what} is not UTF-8") from exc
