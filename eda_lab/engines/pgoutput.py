"""Decoding PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

``pgoutput`` is the plugin PostgreSQL's own logical replication uses, and Debezium's default
for Postgres. Each replication message is one of (first byte):

``B`` begin (the transaction's final LSN, commit time, xid) · ``R`` relation (a table's id,
name and column names, sent before its first change) · ``I`` insert (the new row, each column
as text) · ``C`` commit (its LSN and the **end LSN** of the transaction) · others (update,
delete, truncate, type, origin) that the outbox relay skips.

A transaction is sent only after it committed, whole, in commit order: an uncommitted or
rolled-back outbox row never appears in the stream. That is the property the polling relay
lacks (:mod:`.polling_gap`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PG_EPOCH_MS = 946_684_800_000.0   # 2000-01-01 in Unix ms: pgoutput's timestamps count from it


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time_ms: float
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int        # confirm this one: the slot then never sends the transaction again
    commit_time_ms: float


@dataclass(frozen=True)
class Insert:
    table: str
    row: dict           # column name -> text value (None for NULL)


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode(), end + 1


def _tuple(data: bytes, at: int) -> tuple[list[str | None], int]:
    (count,) = struct.unpack_from(">h", data, at)
    at += 2
    values: list[str | None] = []
    for _ in range(count):
        kind = data[at:at + 1]
        at += 1
        if kind in (b"t", b"b"):
            (length,) = struct.unpack_from(">i", data, at)
            at += 4
            values.append(data[at:at + length].decode())
            at += length
        else:                      # b"n" NULL, b"u" an unchanged TOASTed value
            values.append(None)
    return values, at


class PgOutputDecoder:
    """Turns raw pgoutput payloads into :class:`Begin`, :class:`Insert`, :class:`Commit`
    (None for everything else). It remembers the relations it was told about."""

    def __init__(self):
        self.relations: dict[int, tuple[str, list[str]]] = {}

    def decode(self, data: bytes):
        kind = data[:1]
        if kind == b"B":
            final_lsn, ts, xid = struct.unpack_from(">QqI", data, 1)
            return Begin(final_lsn, PG_EPOCH_MS + ts / 1000.0, xid)
        if kind == b"C":
            _, commit_lsn, end_lsn, ts = struct.unpack_from(">BQQq", data, 1)
            return Commit(commit_lsn, end_lsn, PG_EPOCH_MS + ts / 1000.0)
        if kind == b"R":
            (relid,) = struct.unpack_from(">I", data, 1)
            namespace, at = _cstring(data, 5)
            name, at = _cstring(data, at)
            at += 1                                   # replica identity setting
            (count,) = struct.unpack_from(">h", data, at)
            at += 2
            columns = []
            for _ in range(count):
                at += 1                               # flags (part of the key or not)
                column, at = _cstring(data, at)
                at += 8                               # type oid, type modifier
                columns.append(column)
            self.relations[relid] = (f"{namespace}.{name}", columns)
            return None
        if kind == b"I":
            (relid,) = struct.unpack_from(">I", data, 1)
            table, columns = self.relations[relid]
            values, _ = _tuple(data, 6)               # after the relid and the 'N' marker
            return Insert(table, dict(zip(columns, values, strict=True)))
        return None


def lsn_text(lsn: int) -> str:
    """An LSN the way PostgreSQL prints it (``0/16B3748``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
