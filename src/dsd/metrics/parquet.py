"""A flat Parquet writer in pure Python, for the tables `dsd simulate` writes.

Importing `pyarrow.parquet` costs ~0.18 s and ~60 MB RSS, which alone breaks the start-up
goal of the whole command (<= 0.25 s, <= 90 MB), so the simulator writes its own outputs with
this module; pyarrow still reads them (reports, sweeps, tests).

Scope: one flat table of nullable (OPTIONAL) int64, float64, string (UTF-8) and bool columns,
as pyarrow reads `pa.schema([...])`. Rows arrive one row group per `write_columns` call (memory
is bounded by one row group) and the footer is written on `close()`. Each column chunk is one
data page (V1): definition levels in the RLE/bit-packed hybrid, values PLAIN, the page GZIP-
compressed with zlib (level 1: smaller files than pyarrow's snappy at ~3 us a row; see
benchmarks/parquet_writer.py). The metadata is Thrift compact protocol, encoded by hand
below. No statistics are written: dsd's readers read whole tables, and correct min/max
need care (sort orders, signed zeros) for no gain here.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from pathlib import Path
from typing import Any

# Parquet enums (parquet.thrift)
_PHYSICAL = {"bool": 0, "int64": 2, "float64": 5, "string": 6}  # BOOLEAN, INT64, DOUBLE, BYTE_ARRAY
_OPTIONAL, _UTF8, _PLAIN, _RLE, _DATA_PAGE = 1, 0, 0, 3, 0
_CODECS = {"none": 0, "gzip": 2}  # UNCOMPRESSED, GZIP

# Thrift compact protocol type ids
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _value(kind: int, value: Any) -> bytes:
    if kind in (_I32, _I64):
        return _varint((value << 1) ^ (value >> 63))  # zigzag
    if kind == _BINARY:
        data = value.encode()
        return _varint(len(data)) + data
    if kind == _STRUCT:
        return _struct(value)
    elem, items = value  # _LIST: (element type, items); 15 in the size nibble: a varint follows
    head = bytes([min(len(items), 15) << 4 | elem])
    if len(items) >= 15:
        head += _varint(len(items))
    return head + b"".join(_value(elem, item) for item in items)


def _struct(fields: list[tuple[int, int, Any]]) -> bytes:
    """A compact-protocol struct from (field id, type, value) in id order; None is omitted."""
    out, last = bytearray(), 0
    for fid, kind, value in fields:
        if value is None:
            continue
        # The short form, the id as a delta from the previous field's: the structs here
        # never skip 15 ids, so the long form is not needed.
        out.append((fid - last) << 4 | kind)
        out += _value(kind, value)
        last = fid
    out.append(0)  # stop
    return bytes(out)


_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


def _bits(flags: list[Any]) -> bytes:
    """Truth values bit-packed LSB-first, padded to whole bytes."""
    # As a binary numeral with element 0 last, so it becomes the lowest bit of byte 0.
    digits = bytes(map(bool, flags)).translate(_DIGITS)[::-1]
    return int(digits or b"0", 2).to_bytes((len(flags) + 7) // 8, "little")


def _numbers(code: str, values: list[Any]) -> bytes:
    data = array(code, values)
    if sys.byteorder == "big":
        data.byteswap()
    return data.tobytes()


def _page(kind: str, values: list[Any]) -> bytes:
    """One data page's body: definition levels (4-byte length, RLE/bit-packed hybrid, bit
    width 1), then the non-null values PLAIN."""
    n = len(values)
    nulls = None in values
    if kind == "float64" and not nulls:
        total = sum(values)
        nulls = total != total  # NaN anywhere (or inf - inf): look value by value
    if nulls:
        valid = [v is not None and v == v for v in values]  # NaN != NaN: null
        values = [v for v, ok in zip(values, valid, strict=True) if ok]
        levels = _varint((n + 7) // 8 << 1 | 1) + _bits(valid)  # one bit-packed run
    else:
        levels = _varint(n << 1) + b"\x01"  # one RLE run of 1s
    if kind == "int64":
        data = _numbers("q", values)
    elif kind == "float64":
        data = _numbers("d", values)
    elif kind == "bool":
        data = _bits(values)
    else:  # string: 4-byte length then UTF-8, encoded once per distinct value
        pieces = {v: struct.pack("<I", len(b)) + b for v in set(values) for b in [v.encode()]}
        data = b"".join(map(pieces.__getitem__, values))
    return struct.pack("<I", len(levels)) + levels + data


class ParquetWriter:
    """Writes a flat table of `fields`, (name, type) with type int64, float64, string or
    bool, to `path`: one row group per `write_columns` call, the footer on `close()`."""

    def __init__(self, path: str | Path, fields: tuple[tuple[str, str], ...] | list,
                 compression: str = "gzip") -> None:
        self.fields = tuple(fields)
        self.codec = _CODECS[compression]
        self.num_rows = 0
        self._row_groups: list[list[tuple[int, int, Any]]] = []
        self._file = open(path, "wb")
        self._file.write(b"PAR1")
        self._offset = 4

    def write_columns(self, columns: list[list[Any]]) -> None:
        """One row group: a list of values per field (None, or NaN in a float64, is null)."""
        if len(columns) != len(self.fields):
            raise ValueError(f"{len(columns)} columns for {len(self.fields)} fields")
        n = len(columns[0]) if columns else 0
        if n == 0:
            return
        chunks, total = [], 0
        for (name, kind), values in zip(self.fields, columns, strict=True):
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} values, not {n}")
            page = _page(kind, list(values))
            body = page
            if self.codec:  # GZIP is the gzip format (RFC 1952), hence wbits 31
                zipper = zlib.compressobj(1, zlib.DEFLATED, 31)
                body = zipper.compress(page) + zipper.flush()
            header = _struct([
                (1, _I32, _DATA_PAGE), (2, _I32, len(page)), (3, _I32, len(body)),
                (5, _STRUCT, [(1, _I32, n), (2, _I32, _PLAIN), (3, _I32, _RLE),
                              (4, _I32, _RLE)]),
            ])
            start = self._offset
            self._file.write(header + body)
            self._offset += len(header) + len(body)
            total += len(header) + len(page)
            meta = [(1, _I32, _PHYSICAL[kind]), (2, _LIST, (_I32, [_PLAIN, _RLE])),
                    (3, _LIST, (_BINARY, [name])), (4, _I32, self.codec), (5, _I64, n),
                    (6, _I64, len(header) + len(page)), (7, _I64, len(header) + len(body)),
                    (9, _I64, start)]
            chunks.append([(2, _I64, start), (3, _STRUCT, meta)])
        self._row_groups.append([(1, _LIST, (_STRUCT, chunks)), (2, _I64, total),
                                 (3, _I64, n)])
        self.num_rows += n

    def close(self) -> None:
        if self._file.closed:
            return
        schema = [[(4, _BINARY, "schema"), (5, _I32, len(self.fields))]]
        for name, kind in self.fields:
            text = kind == "string"  # UTF8 and logical STRING: read as string, not binary
            schema.append([(1, _I32, _PHYSICAL[kind]), (3, _I32, _OPTIONAL),
                           (4, _BINARY, name), (6, _I32, _UTF8 if text else None),
                           (10, _STRUCT, [(1, _STRUCT, [])] if text else None)])
        footer = _struct([(1, _I32, 1), (2, _LIST, (_STRUCT, schema)),
                          (3, _I64, self.num_rows), (4, _LIST, (_STRUCT, self._row_groups)),
                          (6, _BINARY, "dsd")])
        self._file.write(footer + struct.pack("<I", len(footer)) + b"PAR1")
        self._file.close()

    def __enter__(self) -> ParquetWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:  # no footer: a half-written table must not read as a complete one
            self._file.close()
