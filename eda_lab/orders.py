"""The shop's orders table: one schema and one vocabulary of states for everyone who writes it.

The order service (notebooks 03-04) inserts an order as ``PLACED``, together with its
``OrderPlaced`` event. The order participant of the Create Order saga (notebook 05) then makes
it ``PENDING`` (the saga's **semantic lock**: the order says a saga is working on it), and
finally ``APPROVED`` or ``REJECTED``. Both work on this one table in the order service's own
database, so a learner reads one schema whichever notebook they are in.

``version`` counts the events the order has announced (1 after ``OrderPlaced``); consumers
and the checkers use it to tell the events of one order apart and to keep them in order.
"""

from __future__ import annotations

import sqlite_utils

ORDERS_TABLE = "orders"

PLACED = "PLACED"        # taken by the order service, announced with OrderPlaced
PENDING = "PENDING"      # a saga holds it (the semantic lock)
APPROVED = "APPROVED"    # the saga completed
REJECTED = "REJECTED"    # the saga was compensated
STATES = (PLACED, PENDING, APPROVED, REJECTED)

def create_orders_table(db: sqlite_utils.Database) -> None:
    """Create the orders table (and its saga-id index), if missing."""
    db.execute(f"""
        CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} (
            order_id TEXT PRIMARY KEY,
            customer TEXT NOT NULL,
            sku TEXT,
            quantity INTEGER,
            amount REAL NOT NULL,
            state TEXT NOT NULL,
            version INTEGER NOT NULL,
            saga_id TEXT,
            created_at REAL,
            updated_at REAL
        )""")
    db.execute(f"CREATE INDEX IF NOT EXISTS orders_saga_id ON {ORDERS_TABLE} (saga_id)")
