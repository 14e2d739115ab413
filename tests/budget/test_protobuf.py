"""The protobuf wire format read by hand: fields, values, and the errors of damaged bytes."""

import struct

import pytest

from mosaic_it.budget.protobuf import (
    ProtoError,
    int32,
    iter_fields,
    payload,
    read_varint,
    text,
    varint,
)


def key(number: int, wire: int) -> bytes:
    return encode_varint(number << 3 | wire)


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_varints_round_trip():
    for n in (0, 1, 127, 128, 300, 2**31, 2**63 + 5):
        assert read_varint(encode_varint(n) + b"\x01", 0) == (n, len(encode_varint(n)))


def test_fields_of_every_wire_type():
    message = (
        key(1, 0)
        + encode_varint(150)
        + key(2, 2)
        + encode_varint(3)
        + "né".encode()
        + key(3, 5)
        + struct.pack("<f", 1.5)
        + key(4, 1)
        + struct.pack("<d", 2.5)
    )
    fields = list(iter_fields(message))
    assert [(n, w) for n, w, _ in fields] == [(1, 0), (2, 2), (3, 5), (4, 1)]
    assert varint(*fields[0][1:], "a") == 150
    assert text(*fields[1][1:], "b") == "né"
    assert struct.unpack("<f", fields[2][2]) == (1.5,)
    assert fields[3][2] == struct.pack("<d", 2.5)
    assert payload(*fields[1][1:], "b") == "né".encode()


def test_negative_int32_is_twos_complement():
    assert int32(0, 2**64 - 1, "bos_id") == -1


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x80", "truncated varint"),
        (b"\xff" * 11, "varint too long"),
        (key(0, 0) + b"\x01", "field number 0"),
        (key(1, 2) + encode_varint(5) + b"ab", "truncated length-delimited field"),
        (key(1, 5) + b"ab", "truncated fixed-width field"),
        (key(1, 3), "unsupported wire type 3"),
    ],
)
def test_damaged_bytes_say_what_is_wrong(data, problem):
    with pytest.raises(ProtoError, match=problem):
        list(iter_fields(data))


def test_a_field_of_the_wrong_type_is_named():
    with pytest.raises(ProtoError, match="TrainerSpec.model_type has wire type 2"):
        varint(2, b"x", "TrainerSpec.model_type")
    with pytest.raises(ProtoError, match="SentencePiece.piece is not UTF-8"):
        text(2, b"\xff", "SentencePiece.piece")
