"""The one binary Reader/Writer: little-endian, bounded, exact, and each layer's own error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcnode import binary
from mcnode.binary import DecodeError, Reader, Writer
from mcnode.scp.codec import MsgDecodeError, MsgReader
from mcnode.transaction import encoding
from mcnode.transaction import errors as tx_errors

WIDTHS = (1, 2, 4, 8)


def test_integers_are_little_endian() -> None:
    w = Writer()
    w.u8(0x01)
    w.u16(0x0203)
    w.u32(0x04050607)
    w.u64(0x08090A0B0C0D0E0F)
    assert w.getvalue() == bytes.fromhex("01 0302 07060504 0f0e0d0c0b0a0908")
    r = Reader(w.getvalue())
    assert (r.u8(), r.u16(), r.u32(), r.u64()) == (1, 0x0203, 0x04050607, 0x08090A0B0C0D0E0F)
    r.finish()


@pytest.mark.parametrize("width", WIDTHS)
def test_counts_and_lengths_round_trip_in_their_width(width: int) -> None:
    top = (1 << (8 * width)) - 1
    w = Writer()
    w.count(top, top, width=width)
    w.var(b"abc", 3, width=width)
    data = w.getvalue()
    assert len(data) == width + width + 3
    r = Reader(data)
    assert r.count(top, width=width) == top
    assert r.var(3, width=width) == b"abc"
    r.finish()


@pytest.mark.parametrize("width", WIDTHS)
def test_writer_refuses_what_the_reader_would_refuse(width: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        Writer().count(5, 4, width=width)
    with pytest.raises(ValueError, match="limit"):
        Writer().var(b"12345", 4, width=width)
    with pytest.raises(OverflowError, match="fit"):
        Writer().count(1 << (8 * width), 1 << 70, width=width)
    with pytest.raises(ValueError, match="limit"):
        Writer().var_list([b"a"] * 3, 2, 10)
    with pytest.raises(ValueError, match="limit"):
        Writer().var_list([b"a", b"12345"], 2, 4)
    with pytest.raises(ValueError, match="32 bytes"):
        Writer().fixed(b"short", 32)
    for n in (-1, 1 << 64):
        with pytest.raises(OverflowError):
            Writer().u64(n)


@pytest.mark.parametrize("width", WIDTHS)
def test_reader_refuses_counts_and_lengths_over_their_limit(width: int) -> None:
    over = (5).to_bytes(width, "little")
    with pytest.raises(DecodeError, match="5 things exceed the limit of 4"):
        Reader(over).count(4, width=width, what="things")
    with pytest.raises(DecodeError, match="limit"):
        Reader(over + bytes(5)).var(4, width=width)


def test_var_list_layout_and_limits() -> None:
    w = Writer()
    w.var_list([b"", b"xy"], 2, 2)
    data = w.getvalue()
    assert data == bytes.fromhex("02000000 00000000 02000000") + b"xy"
    assert Reader(data).var_list(2, 2) == [b"", b"xy"]
    with pytest.raises(DecodeError, match="3 items exceed"):
        Reader((3).to_bytes(4, "little")).var_list(2, 2)
    with pytest.raises(DecodeError, match="item of 3 bytes exceeds"):
        Reader(bytes.fromhex("01000000 03000000") + b"abc").var_list(2, 2)
    w = Writer()
    w.var_list([], 0, 0)
    assert w.getvalue() == bytes(4)


def test_truncation_and_trailing_bytes() -> None:
    w = Writer()
    w.u32(7)
    w.var(b"hello", 10, width=2)
    w.var_list([b"a", b"bc"], 5, 5)
    data = w.getvalue()
    for n in range(len(data)):
        r = Reader(data[:n])
        with pytest.raises(DecodeError, match="truncated"):
            r.u32()
            r.var(10, width=2)
            r.var_list(5, 5)
    r = Reader(data + b"\0")
    assert (r.u32(), r.var(10, width=2), r.var_list(5, 5)) == (7, b"hello", [b"a", b"bc"])
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        r.finish()


@pytest.mark.parametrize("garbage", [None, "text", 12, [1, 2]])
def test_non_bytes_input_is_a_decode_error(garbage: object) -> None:
    with pytest.raises(DecodeError):
        Reader(garbage)  # type: ignore[arg-type]


def test_each_layer_raises_its_own_error_type() -> None:
    """Existing `except` clauses keep their meaning: scp code catches MsgDecodeError,
    transaction and ledger code catch transaction.errors.DecodeError, and both are the
    shared DecodeError, a ValueError."""
    for reader, error in ((MsgReader, MsgDecodeError), (encoding.Reader, tx_errors.DecodeError)):
        assert issubclass(error, binary.DecodeError) and issubclass(error, ValueError)
        with pytest.raises(error):
            reader(b"\x01").u32()
        with pytest.raises(error):
            reader(b"\xff").count(1, width=1)
    assert not issubclass(MsgDecodeError, tx_errors.DecodeError)
    assert not issubclass(tx_errors.DecodeError, MsgDecodeError)


def test_a_reader_may_bound_its_whole_input() -> None:
    class Small(Reader):
        __slots__ = ()
        max_size = 4

    Small(bytes(4))
    with pytest.raises(DecodeError, match="5 bytes exceeds the limit of 4"):
        Small(bytes(5))


@settings(deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=64))
def test_decoding_is_canonical(data: bytes) -> None:
    """Whatever decodes as (u16, var, var_list) re-encodes to the very same bytes."""
    try:
        r = Reader(data)
        fields = (r.u16(), r.var(8, width=1), r.var_list(4, 8))
        r.finish()
    except DecodeError:
        return
    w = Writer()
    w.u16(fields[0])
    w.var(fields[1], 8, width=1)
    w.var_list(fields[2], 4, 8)
    assert w.getvalue() == data
