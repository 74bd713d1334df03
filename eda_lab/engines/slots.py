"""Replication slots: create, check, drop, and watch the WAL they hold.

A logical replication slot is the server's bookmark for one reader of the change stream: it
keeps every WAL segment from its ``restart_lsn`` on until the reader confirms it has what it
needs (``confirmed_flush_lsn``), however long that takes. That is what makes the CDC relay
resumable after a crash, and what fills a disk when a relay is gone for good.
"""

from __future__ import annotations

import psycopg2
import psycopg2.errors

from .errors import SlotExists, SlotInUse
from .postgres import check_identifier, connect

SLOT = "eda_lab_outbox"
PLUGIN = "pgoutput"


def _slot_row(cur, slot: str):
    cur.execute("SELECT plugin, database, active, active_pid FROM pg_replication_slots "
                "WHERE slot_name = %s", (slot,))
    return cur.fetchone()


def create_slot(dsn: str, slot: str = SLOT) -> str:
    """Create the logical replication slot ``slot`` (pgoutput) in the database of ``dsn``;
    :class:`SlotExists` if there is one of that name. Returns its starting LSN."""
    check_identifier(slot, "slot")
    conn = connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            row = _slot_row(cur, slot)
            if row is not None:
                raise SlotExists(
                    f"slot={slot!r} already exists (plugin {row[0]}, database {row[1]}); to "
                    f"resume from it, start CdcRelay(..., slot={slot!r}); to start over, "
                    f"drop_slot(dsn, {slot!r}) first (its unread changes are then lost to it)")
            try:
                cur.execute("SELECT lsn FROM pg_create_logical_replication_slot(%s, %s)",
                            (slot, PLUGIN))
            except psycopg2.errors.DuplicateObject:
                raise SlotExists(f"slot={slot!r} was just created by someone else; reuse it "
                                 f"with CdcRelay(..., slot={slot!r})") from None
            return cur.fetchone()[0]
    finally:
        conn.close()


def ensure_slot(dsn: str, slot: str = SLOT) -> bool:
    """Create ``slot`` unless it exists; True if created. A slot of that name that this relay
    cannot use (another plugin, another database) is a :class:`SlotExists` error."""
    check_identifier(slot, "slot")
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            row = _slot_row(cur, slot)
            cur.execute("SELECT current_database()")
            database = cur.fetchone()[0]
    finally:
        conn.close()
    if row is None:
        try:
            create_slot(dsn, slot)
        except SlotExists:
            return False
        return True
    plugin, slot_database = row[0], row[1]
    if plugin != PLUGIN or slot_database != database:
        raise SlotExists(
            f"slot={slot!r} already exists for plugin {plugin!r} in database "
            f"{slot_database!r}; this relay needs a {PLUGIN!r} slot in {database!r}: pass "
            f"another slot=..., or drop_slot(dsn, {slot!r}) if nothing else uses it")
    return False


def drop_slot(dsn: str, slot: str = SLOT) -> bool:
    """Drop ``slot`` (True if it existed). The server frees the WAL it held; the changes the
    slot had not delivered are gone for it. A slot in use is a :class:`SlotInUse` error."""
    check_identifier(slot, "slot")
    conn = connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            row = _slot_row(cur, slot)
            if row is None:
                return False
            if row[2]:
                raise SlotInUse(f"slot={slot!r} is in use by the walsender pid {row[3]}: stop "
                                "its relay before dropping the slot")
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return True
    finally:
        conn.close()


def slot_status(dsn: str, slot: str = SLOT) -> dict | None:
    """The slot as the server sees it: active or not, its positions, and the WAL it retains
    (``pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)``, bytes). None if missing."""
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT slot_name, active, restart_lsn::text, confirmed_flush_lsn::text, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, wal_status "
                "FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    names = ("slot", "active", "restart_lsn", "confirmed_flush_lsn", "retained_wal_bytes",
             "wal_status")
    return dict(zip(names, row, strict=True))
