"""How far a reader of the store's notification log has got, kept in the store.

Each reader (the status views, the event publisher) keeps its position in the
``view_tracking`` table under a name of its own. A position moves only from
where its mover expects it to be (compare-and-set), so two movers never both
win, and a mover that lost learns it rather than overwriting the winner.
"""

from __future__ import annotations

from projections.database import Cursor, ViewDatabase

# SQLite locks the whole database for a write transaction; PostgreSQL needs
# the row locked, so that two movers queue instead of both reading the same.
_LOCKING_SELECT = {
    "postgres": "SELECT position FROM view_tracking WHERE name = :name FOR UPDATE",
    "sqlite": "SELECT position FROM view_tracking WHERE name = :name",
}
# The key of projections.views' schema lock: b"certd.vw" as a number.
_SCHEMA_LOCK = {"key": int.from_bytes(b"certd.vw", "big")}
TRACKING_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS view_tracking ("
    "name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
)


class PositionMovedError(RuntimeError):
    """The position is not where its mover expected: another mover moved it."""


class PositionTracker:
    """The position tracked under ``name``; 0 until it first moves."""

    def __init__(self, db: ViewDatabase, name: str) -> None:
        self.db = db
        self.name = name
        self._locking_select = _LOCKING_SELECT[db.dialect]

    def create(self) -> None:
        """Create the table and the row, in a transaction of their own.

        On PostgreSQL, ``CREATE TABLE IF NOT EXISTS`` is not safe against a
        twin running at the same moment (a fresh database, several processes
        starting): it takes its turn on the lock the views' schema changes
        take.
        """
        with self.db.transaction() as cursor:
            if self.db.dialect == "postgres":
                cursor.execute("SELECT pg_advisory_xact_lock(:key)", _SCHEMA_LOCK)
            self.create_in(cursor)

    def create_in(self, cursor: Cursor) -> None:
        """Create the table if need be and the row at 0 if it has none."""
        cursor.execute(TRACKING_SCHEMA)
        cursor.execute(
            "INSERT INTO view_tracking (name, position) VALUES (:name, 0) "
            "ON CONFLICT (name) DO NOTHING",
            {"name": self.name},
        )

    def drop_in(self, cursor: Cursor) -> None:
        cursor.execute("DELETE FROM view_tracking WHERE name = :name", self._key)

    def position(self) -> int:
        rows = self.db.query(
            "SELECT position FROM view_tracking WHERE name = :name", self._key
        )
        return int(rows[0]["position"]) if rows else 0

    def lock(self, cursor: Cursor) -> int | None:
        """Read the position and hold it until the transaction ends."""
        cursor.execute(self._locking_select, self._key)
        found = cursor.fetchone()
        return int(found["position"]) if found else None

    def move(self, cursor: Cursor, from_position: int, to_position: int) -> None:
        """Move the position in the cursor's transaction, from where it must be.

        Raises ``PositionMovedError`` when it is elsewhere; the caller's
        transaction then rolls back whatever it wrote with the move.
        """
        current = self.lock(cursor)
        if current != from_position:
            msg = (
                f"{self.name} is at position {current}, "
                f"not {from_position}: another writer moved it"
            )
            raise PositionMovedError(msg)
        self.set_in(cursor, to_position)

    def advance(self, from_position: int, to_position: int) -> None:
        """Move the position in a transaction of its own (see ``move``)."""
        with self.db.transaction() as cursor:
            self.move(cursor, from_position, to_position)

    def set_in(self, cursor: Cursor, position: int) -> None:
        """Put the position anywhere, whoever else moves it: for swaps and
        rewinds, which are meant to override."""
        cursor.execute(
            "UPDATE view_tracking SET position = :position WHERE name = :name",
            {**self._key, "position": position},
        )

    def rewind(self, position: int) -> None:
        """Set the position back (or forward) to ``position``, in its own
        transaction: the reader then reads again from there."""
        with self.db.transaction() as cursor:
            self.lock(cursor)
            self.set_in(cursor, position)

    @property
    def _key(self) -> dict[str, str]:
        return {"name": self.name}
