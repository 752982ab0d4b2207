"""The status views' tables, and every query operations staff run on them.

One table holds a row per certification: the whole row as JSON for reading,
and the columns that filters, order and sums use. Its tracking record (how
far into the store the table has been brought) is written in the same
transaction as the rows, so a crash between the two cannot happen.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import structlog
from pydantic import BaseModel

from domain.certification import Status
from domain.fees import RevenueTier
from projections.database import Cursor, ViewDatabase
from projections.status_view import Draft, StatusRow, holds_certificate
from projections.tracking import PositionMovedError, PositionTracker

log = structlog.get_logger(component="certd.projections")

LIVE_TABLE = "certification_status"
# Table names go into SQL text, so only these are allowed.
_TABLE_NAME = re.compile(r"[a-z_]{1,40}")
# The advisory lock that schema changes of the views take turns on.
_SCHEMA_LOCK = {"key": int.from_bytes(b"certd.vw", "big")}


# The view's position changed under a writer: another one is running.
ViewMovedError = PositionMovedError


class CursorError(ValueError):
    pass


@dataclass(frozen=True)
class SearchFilters:
    status: Status | None = None
    tier: RevenueTier | None = None
    is_certified: bool | None = None
    due_before: date | None = None
    q: str | None = None


@dataclass(frozen=True)
class StatsRow:
    status: Status
    tier: RevenueTier
    count: int
    certified: int
    fees_invoiced_usd: Decimal
    fees_paid_usd: Decimal
    fees_outstanding_usd: Decimal


class StatusViews:
    """The status view table named ``table``, tracked under the same name."""

    def __init__(self, db: ViewDatabase, table: str = LIVE_TABLE) -> None:
        if not _TABLE_NAME.fullmatch(table):
            msg = f"a view table name is lower-case letters and _, got {table!r}"
            raise ValueError(msg)
        self.db = db
        self.table = table
        self.tracking = PositionTracker(db, table)

    def create(self) -> None:
        """Create the table, its indexes and its tracking row if need be.

        Replicas may start together on a fresh database, and PostgreSQL's
        ``CREATE ... IF NOT EXISTS`` is not safe against a concurrent twin
        (a unique violation in its catalog): they take turns on a lock.
        """
        with self.db.transaction() as cursor:
            if self.db.dialect == "postgres":
                cursor.execute("SELECT pg_advisory_xact_lock(:key)", _SCHEMA_LOCK)
            self.tracking.create_in(cursor)
            for statement in _schema(self.table):
                cursor.execute(statement)
            self._add_new_columns(cursor)
            if self.db.dialect == "sqlite":
                _index_names_on_sqlite(cursor, self.table)

    def _add_new_columns(self, cursor: Cursor) -> None:
        """Add the columns a table made by an earlier version lacks, and
        project it again from the start, which fills them in every row."""
        cursor.execute(_COLUMN_NAMES[self.db.dialect], {"table": self.table})
        present = {row["name"] for row in cursor.fetchall()}
        missing = [name for name in _ADDED_COLUMNS if name not in present]
        for name in missing:
            kind = _ADDED_COLUMNS[name]
            cursor.execute(f"ALTER TABLE {self.table} ADD COLUMN {name} {kind}")
        if missing:
            self.tracking.set_in(cursor, 0)
            log.warning("view_columns_added", table=self.table, columns=missing)

    def analyze(self) -> None:
        """Refresh the planner's statistics of the table.

        SQLite keeps none until asked, and without them it picks the wrong
        index for the certified filter and sorts tens of thousands of rows.
        """
        with self.db.transaction() as cursor:
            cursor.execute(f"ANALYZE {self.table}")

    def index_names_for_search(self) -> bool:
        """Give the name search a trigram index where PostgreSQL allows it.

        ``q`` is a substring search, which a b-tree cannot serve. Creating
        the pg_trgm extension needs the CREATE privilege on the database;
        without it the search still works, scanning the table, and this
        returns False. On SQLite, ``create`` made an FTS5 trigram index.
        """
        if self.db.dialect != "postgres":
            return True
        try:
            with self.db.transaction() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS {self.table}_name_trigrams "
                    f"ON {self.table} USING gin (organisation_key gin_trgm_ops)"
                )
        except Exception as error:  # a missing privilege, or no such extension
            log.warning(
                "name_search_unindexed", table=self.table, error=type(error).__name__
            )
            return False
        return True

    def drop_indexes(self) -> None:
        """Drop the secondary indexes before a bulk load; ``restore_indexes``,
        or ``create`` at the next start, makes them again.

        Building an index once over loaded rows costs less than keeping it
        in order through every insert.
        """
        names = [*_indexes(self.table), f"{self.table}_name_trigrams"]
        with self.db.transaction() as cursor:
            for name in names:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")

    def restore_indexes(self) -> None:
        self.create()
        self.index_names_for_search()

    def drop(self) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            if self.db.dialect == "sqlite":
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}_trigrams")
                cursor.execute(f"DROP TABLE IF EXISTS {self.table}_names")
            self.tracking.drop_in(cursor)

    def replace_with(self, other: StatusViews) -> None:
        """Make this view a copy of ``other``, rows and position, at once."""
        columns = ", ".join(_COLUMNS)
        with self.db.transaction() as cursor:
            self.tracking.lock(cursor)
            position = other.tracking.lock(cursor) or 0
            cursor.execute(f"DELETE FROM {self.table}")
            with self._indexing_new_names(cursor):
                cursor.execute(
                    f"INSERT INTO {self.table} ({columns}) "
                    f"SELECT {columns} FROM {other.table}"
                )
            self.tracking.set_in(cursor, position)

    def position(self) -> int:
        return self.tracking.position()

    def load(self, ids: Iterable[UUID]) -> dict[UUID, StatusRow]:
        wanted = [str(certification_id) for certification_id in ids]
        if not wanted:
            return {}
        names = {f"id{index}": value for index, value in enumerate(wanted)}
        placeholders = ", ".join(f":{name}" for name in names)
        rows = self.db.query(
            f"SELECT row_json FROM {self.table} WHERE id IN ({placeholders})",
            names,
        )
        loaded = (StatusRow.model_validate_json(row["row_json"]) for row in rows)
        return {row.id: row for row in loaded}

    def save(
        self, rows: Sequence[StatusRow], from_position: int, to_position: int
    ) -> None:
        """Write rows and move the tracking from one position to the next.

        Refuses (``ViewMovedError``) when the view is no longer at
        ``from_position``, so two runners, or a runner and a swap, never
        write the same events twice or skip any.
        """
        self.save_drafts([vars(row) for row in rows], from_position, to_position)

    def save_drafts(
        self, drafts: Sequence[Draft], from_position: int, to_position: int
    ) -> None:
        """``save`` for rows given by their fields, as ``advance`` leaves them:
        what a catch-up writes, without making a ``StatusRow`` of each."""
        columns = [_columns(draft) for draft in drafts]
        with self.db.transaction() as cursor:
            self.tracking.move(cursor, from_position, to_position)
            if columns:
                with self._indexing_new_names(cursor):
                    cursor.executemany(_upsert(self.table), columns)

    @contextmanager
    def _indexing_new_names(self, cursor: Cursor) -> Iterator[None]:
        """Add the names of the rows inserted in the block to SQLite's name
        index, in one statement at its end.

        A new row takes a rowid past every row before it. An insert trigger
        would index the names one statement per row, which cost six times
        as much (a third of a catch-up's writing).
        """
        if self.db.dialect != "sqlite":
            yield
            return
        cursor.execute(f"SELECT COALESCE(MAX(rowid), 0) AS last FROM {self.table}")
        found = cursor.fetchone()
        last = 0 if found is None else int(found["last"])
        yield
        cursor.execute(
            f"INSERT INTO {self.table}_names (rowid, organisation_key) "
            f"SELECT rowid, organisation_key FROM {self.table} WHERE rowid > :last",
            {"last": last},
        )

    def get(self, certification_id: UUID) -> StatusRow | None:
        return self.load([certification_id]).get(certification_id)

    def search(
        self,
        filters: SearchFilters,
        today: date,
        limit: int,
        after: str | None = None,
    ) -> tuple[list[StatusRow], str | None]:
        """Return a page in a stable order (creation time, then id) and the
        cursor of the next page, or None on the last page."""
        clauses, params = _where(filters, today)
        source = self.table
        if filters.q:
            clause, walk_in_order = self._name_clause(filters.q.casefold(), params)
            clauses.append(clause)
            if walk_in_order:
                source = f"{self.table} INDEXED BY {self.table}_order"
        if after is not None:
            created_at, last_id = decode_cursor(after)
            clauses.append("(created_at, id) > (:after_created_at, :after_id)")
            params.update(after_created_at=created_at, after_id=last_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params["limit"] = limit + 1
        rows = self.db.query(
            f"SELECT row_json FROM {source} {where} "
            "ORDER BY created_at, id LIMIT :limit",
            params,
        )
        page = [StatusRow.model_validate_json(row["row_json"]) for row in rows]
        if len(page) <= limit:
            return page, None
        page = page[:limit]
        return page, encode_cursor(page[-1])

    def _name_clause(self, key: str, params: dict[str, Any]) -> tuple[str, bool]:
        """Return the condition that the name contains ``key``, and whether
        the rows are better walked in list order than gathered and sorted.

        On SQLite a key of three characters or more is looked up in the
        trigram index; shorter ones, which have no trigram, scan the names.
        The planner cannot tell how many names a key matches and always
        gathers them all before sorting: slow for a word thousands of names
        share, whose first page the list order reaches within a few hundred
        rows. The rarest of the key's trigrams bounds the matches.
        """
        if self.db.dialect != "sqlite" or len(key) < TRIGRAM:
            params["q"] = f"%{_escape_like(key)}%"
            return "organisation_key LIKE :q ESCAPE '\\'", False
        params["phrase"] = '"' + key.replace('"', '""') + '"'
        clause = (
            f"rowid IN (SELECT rowid FROM {self.table}_names "
            f"WHERE {self.table}_names MATCH :phrase)"
        )
        return clause, self._names_with_rarest_trigram(key) > WALK_WHEN_MATCHES

    def _names_with_rarest_trigram(self, key: str) -> int:
        trigrams = {key[i : i + TRIGRAM] for i in range(len(key) - TRIGRAM + 1)}
        names = {f"t{index}": trigram for index, trigram in enumerate(trigrams)}
        placeholders = ", ".join(f":{name}" for name in names)
        found = self.db.query(
            f"SELECT COUNT(*) AS known, MIN(doc) AS fewest "
            f"FROM {self.table}_trigrams WHERE term IN ({placeholders})",
            names,
        )[0]
        if found["known"] < len(trigrams):
            return 0  # a trigram no name has
        return int(found["fewest"])

    def stats(self, today: date) -> list[StatsRow]:
        rows = self.db.query(
            "SELECT status, tier, COUNT(*) AS count, "
            "SUM(CASE WHEN holds_certificate = 1 AND valid_until >= :today "
            "THEN 1 ELSE 0 END) AS certified, "
            "SUM(fees_invoiced_cents) AS invoiced, SUM(fees_paid_cents) AS paid, "
            "SUM(fee_due_cents) AS outstanding "
            f"FROM {self.table} GROUP BY status, tier ORDER BY status, tier",
            {"today": today.isoformat()},
        )
        return [
            StatsRow(
                status=Status(row["status"]),
                tier=RevenueTier(row["tier"]),
                count=int(row["count"]),
                certified=int(row["certified"]),
                fees_invoiced_usd=_usd(row["invoiced"]),
                fees_paid_usd=_usd(row["paid"]),
                fees_outstanding_usd=_usd(row["outstanding"]),
            )
            for row in rows
        ]

    def registry(self, today: date) -> list[StatusRow]:
        """Organisations certified today, and suspended ones that would be."""
        rows = self.db.query(
            f"SELECT row_json FROM {self.table} WHERE {_REGISTERED} "
            "ORDER BY organisation_key, id",
            {"today": today.isoformat()},
        )
        return [StatusRow.model_validate_json(row["row_json"]) for row in rows]

    def registry_entries(self, today: date) -> str:
        """Return the public registry's entries as one JSON array, in the
        order of ``registry``; each has the fields of
        ``api.schemas.RegistryEntry``."""
        # A row not yet projected again since its table gained the column
        # has no entry, and is left out until it is.
        rows = self.db.query(
            f"SELECT registry_entry FROM {self.table} WHERE {_REGISTERED} "
            "AND registry_entry IS NOT NULL ORDER BY organisation_key, id",
            {"today": today.isoformat()},
        )
        return "[" + ",".join(row["registry_entry"] for row in rows) + "]"

    def due_for_reevaluation(self, today: date) -> list[UUID]:
        """Certified certifications whose re-evaluation is due, oldest first."""
        rows = self.db.query(
            f"SELECT id FROM {self.table} "
            "WHERE reevaluation_due_on <= :today AND status = 'certified' "
            "ORDER BY reevaluation_due_on, id",
            {"today": today.isoformat()},
        )
        return [UUID(row["id"]) for row in rows]

    def past_renewal_deadline(self, today: date) -> list[UUID]:
        """Renewals still open after their last day, oldest deadline first."""
        rows = self.db.query(
            f"SELECT id FROM {self.table} "
            "WHERE renew_by < :today AND status IN "
            "('reevaluation_due', 'in_review', 'awaiting_info', 'approved') "
            "ORDER BY renew_by, id",
            {"today": today.isoformat()},
        )
        return [UUID(row["id"]) for row in rows]

    def all_rows(self) -> Iterator[StatusRow]:
        for row in self.db.query(f"SELECT row_json FROM {self.table} ORDER BY id"):
            yield StatusRow.model_validate_json(row["row_json"])

    def column_drift(self) -> Iterator[tuple[UUID, str, object, object]]:
        """Yield each filter column that disagrees with its row's JSON.

        Filters, sums and the registry read the columns; a change to them
        alone would otherwise go unseen by a comparison of rows.
        """
        names = ", ".join(_COLUMNS)
        for stored in self.db.query(f"SELECT {names} FROM {self.table} ORDER BY id"):
            row = StatusRow.model_validate_json(stored["row_json"])
            for name, expected in _columns(vars(row)).items():
                if stored[name] != expected:
                    yield row.id, name, stored[name], expected


def encode_cursor(row: StatusRow) -> str:
    raw = json.dumps([_instant(row.created_at), str(row.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, last_id = json.loads(base64.urlsafe_b64decode(padded))
        # Only a time with its zone can be compared with the stored ones.
        instant = datetime.fromisoformat(created_at)
        if instant.tzinfo is None:
            msg = f"the cursor's time {created_at!r} has no timezone"
            raise ValueError(msg)
        return _instant(instant), str(UUID(str(last_id)))
    except (ValueError, TypeError) as error:
        msg = "cursor is not one this service gave; start again without it"
        raise CursorError(msg) from error


def _where(filters: SearchFilters, today: date) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {"today": today.isoformat()}
    if filters.status is not None:
        clauses.append("status = :status")
        params["status"] = filters.status.value
    if filters.tier is not None:
        clauses.append("tier = :tier")
        params["tier"] = filters.tier.value
    if filters.is_certified is True:
        clauses.append("holds_certificate = 1 AND valid_until >= :today")
    elif filters.is_certified is False:
        clauses.append(
            "(holds_certificate = 0 OR valid_until IS NULL OR valid_until < :today)"
        )
    if filters.due_before is not None:
        clauses.append("reevaluation_due_on < :due_before")
        params["due_before"] = filters.due_before.isoformat()
    return clauses, params


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _schema(table: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "id TEXT PRIMARY KEY, "
        "organisation_key TEXT NOT NULL, "
        "status TEXT NOT NULL, "
        "tier TEXT NOT NULL, "
        "holds_certificate INTEGER NOT NULL, "
        "valid_until TEXT, "
        "reevaluation_due_on TEXT, "
        "renew_by TEXT, "
        "fees_invoiced_cents BIGINT NOT NULL, "
        "fees_paid_cents BIGINT NOT NULL, "
        "fee_due_cents BIGINT NOT NULL, "
        "created_at TEXT NOT NULL, "
        "position BIGINT NOT NULL, "
        "row_json TEXT NOT NULL, "
        "registry_entry TEXT)",
        *(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"
            for name, columns in _indexes(table).items()
        ),
    ]


def _indexes(table: str) -> dict[str, str]:
    """The table's secondary indexes: their names and columns."""
    return {
        f"{table}_order": "created_at, id",
        f"{table}_status": "status, created_at, id",
        f"{table}_due": "reevaluation_due_on",
        f"{table}_renew_by": "renew_by",
        f"{table}_certified": "holds_certificate, valid_until",
        # The scheduler's two queries: status first, so that SQLite, which has
        # no statistics, does not pick the status index and scan every
        # certified row (the date indexes alone lose to it).
        f"{table}_due_by_status": "status, reevaluation_due_on, id",
        f"{table}_renew_by_status": "status, renew_by, id",
    }


# The columns a view table has, by the dialect's own catalogue.
_COLUMN_NAMES = {
    "sqlite": "SELECT name FROM pragma_table_info(:table)",
    "postgres": (
        "SELECT column_name AS name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :table"
    ),
}
# Columns added since the first version of the table, with their types.
_ADDED_COLUMNS = {"registry_entry": "TEXT"}
# The rows the public registry lists: certified now, or suspended meanwhile.
_REGISTERED = (
    "(holds_certificate = 1 OR status = 'suspended') AND valid_until >= :today"
)
TRIGRAM = 3
# Above this many matches, a name search walks the rows in list order.
WALK_WHEN_MATCHES = 1_000


def _index_names_on_sqlite(cursor: Cursor, table: str) -> None:
    """Index the organisation names of ``table`` by trigram, and fill the
    index if new.

    New rows are indexed by the writes that insert them
    (``StatusViews._indexing_new_names``); triggers keep the index in step
    when a row goes or its name changes, in the same transaction. The names
    are case-folded already, so the index compares them as they are: a match
    is then exactly a substring, as with LIKE.
    """
    names = f"{table}_names"
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = :name", {"name": names})
    exists = cursor.fetchone() is not None
    cursor.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {names} USING fts5("
        f"organisation_key, content='{table}', content_rowid='rowid', "
        "tokenize='trigram case_sensitive 1')"
    )
    forget = (
        f"INSERT INTO {names} ({names}, rowid, organisation_key) "
        "VALUES ('delete', old.rowid, old.organisation_key);"
    )
    learn = (
        f"INSERT INTO {names} (rowid, organisation_key) "
        "VALUES (new.rowid, new.organisation_key);"
    )
    cursor.execute(
        f"CREATE TRIGGER IF NOT EXISTS {names}_delete AFTER DELETE ON {table} "
        f"BEGIN {forget} END"
    )
    cursor.execute(
        f"CREATE TRIGGER IF NOT EXISTS {names}_update AFTER UPDATE ON {table} "
        "WHEN old.organisation_key IS NOT new.organisation_key "
        f"BEGIN {forget} {learn} END"
    )
    # How many names hold each trigram, read by the search to pick its plan.
    cursor.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table}_trigrams "
        f"USING fts5vocab({names}, 'row')"
    )
    if not exists:
        cursor.execute(f"INSERT INTO {names} ({names}) VALUES ('rebuild')")


_COLUMNS = (
    "id",
    "organisation_key",
    "status",
    "tier",
    "holds_certificate",
    "valid_until",
    "reevaluation_due_on",
    "renew_by",
    "fees_invoiced_cents",
    "fees_paid_cents",
    "fee_due_cents",
    "created_at",
    "position",
    "row_json",
    "registry_entry",
)


def _upsert(table: str) -> str:
    names = ", ".join(_COLUMNS)
    values = ", ".join(f":{name}" for name in _COLUMNS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS[1:])
    return (
        f"INSERT INTO {table} ({names}) VALUES ({values}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}"
    )


def _columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The table's columns for a row, from its fields."""
    status = fields["status"]
    holds = holds_certificate(status, fields["in_renewal"])
    return {
        "id": str(fields["id"]),
        "organisation_key": fields["organisation_name"].casefold(),
        "status": status.value,
        "tier": fields["tier"].value,
        "holds_certificate": int(holds),
        "valid_until": _day(fields["valid_until"]),
        "reevaluation_due_on": _day(fields["reevaluation_due_on"]),
        "renew_by": _day(fields["renew_by"]),
        "fees_invoiced_cents": _cents(fields["fees_invoiced_usd"]),
        "fees_paid_cents": _cents(fields["fees_paid_usd"]),
        "fee_due_cents": _cents(fields["fee_due_usd"]),
        "created_at": _instant(fields["created_at"]),
        "position": fields["position"],
        "row_json": row_json(fields),
        "registry_entry": _registry_entry(fields, holds),
    }


def row_json(fields: Mapping[str, Any]) -> str:
    """A row's JSON, from its fields: what ``StatusRow.model_dump_json`` writes
    (money as decimal strings, UTC instants with ``Z``), in one pass of
    orjson, which takes a third of pydantic's time on a row with payments."""
    return orjson.dumps(fields, default=_json_value, option=orjson.OPT_UTC_Z).decode()


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return vars(value)
    msg = f"a status row holds no {type(value).__name__}"
    raise TypeError(msg)


def _registry_entry(fields: Mapping[str, Any], holds: bool) -> str | None:
    """The row's entry in the public registry, as JSON, if it may be listed.

    Kept beside the row, so that the registry of tens of thousands of
    organisations is read, not built, on each request.
    """
    suspended = fields["status"] is Status.SUSPENDED
    if not (holds or suspended):
        return None
    organisation = fields["organisation"]
    entry = {
        "organisation": organisation["name"],
        "website": organisation.get("website"),
        "country": organisation["country"],
        "models": [model["name"] for model in fields["models"]],
        "certified_since": _day(fields["certified_since"]),
        "valid_until": _day(fields["valid_until"]),
        "suspended": suspended,
    }
    return orjson.dumps(entry).decode()


def _day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _instant(instant: datetime) -> str:
    """An ISO UTC time with fixed width, so that text order is time order."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def _usd(cents: Any) -> Decimal:
    return Decimal(int(cents or 0)) / 100
