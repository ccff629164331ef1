"""`synth databases`: new SQLite databases for synthesis and training, filled from the Spider schemas that
ship without rows, disjoint from every evaluation database.

    schemas = load_schemas(Path("../shared/data/spider/tables.json"))
    chosen = select_schemas(schemas, excluded=evaluation_db_ids(Path("../shared/data/spider")))
    summary = synthesize_databases(chosen, Path("out"), llm=None, seed=0)   # programmatic values only

A database is planned table by table in dependency order (referenced tables first; self-references and
cycles filled afterwards), with rows that respect the column types, primary keys and the UNIQUE constraints
foreign keys need (unique), foreign keys (values drawn from the referenced rows, skewed so that some parents
have many children and some none) and NOT NULL on keys. Text columns take a vocabulary the model proposed
(synth.vocabulary) or programmatic values by name heuristics; numbers, dates, names, e-mails, cities … are
programmatic. The same seed (and vocabulary) gives the same bytes. Each file is written to a temporary name
and renamed into place, so `OUT/<db_id>/<db_id>.sqlite` is always whole; `OUT/databases.json` (the
manifest, a small datasheet) records every database built, and a run that is started again skips the
databases it already holds and asks the model nothing it asked before (the work file `vocabulary.jsonl`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlwright.errors import ConfigError, DatasetError
from sqlwright.llm.base import LLM
from sqlwright.synth.vocabulary import (
    VOCABULARY_PROMPT_VERSION,
    VocabularyCache,
    VocabularyRequest,
    VocabularyStats,
    propose_vocabulary,
)

log = logging.getLogger(__name__)

DEFAULT_ROWS = 45  # rows per table vary around this: 2/3 to 4/3 of it (30-60 by default)
VALUES_PER_COLUMN = 30  # values asked of the model per free-text column (categories ask fewer)
CATEGORY_VALUES = 6
MANIFEST_NAME = "databases.json"
WORK_FILE_NAME = "vocabulary.jsonl"
MANIFEST_FORMAT = "sqlwright-synth-databases/1"
GENERATOR_VERSION = "databases-2"  # change when the values a seed gives change

# Spider 1.0's dev databases: the evaluation set, never synthesized (also found on disk: database/, dev.json).
SPIDER_DEV_DB_IDS = frozenset({
    "battle_death", "car_1", "concert_singer", "course_teach", "cre_Doc_Template_Mgt", "dog_kennels",
    "employee_hire_evaluation", "flight_2", "museum_visit", "network_1", "orchestra", "pets_1", "poker_player",
    "real_estate_properties", "singer", "student_transcripts_tracking", "tvshow", "voter_1", "world_1", "wta_1",
})
# Spider training schemas that are the same databases as other benchmarks' evaluation databases (same tables,
# same origin): data synthesized on them would leak into those evaluations.
DUPLICATES_OF_EVALUATION = {
    "academic": "the same schema as SQL-Eval's academic",
    "geo": "the same schema as SQL-Eval's geography",
    "restaurants": "the same schema as SQL-Eval's restaurants",
    "scholar": "the same schema as SQL-Eval's scholar",
    "yelp": "the same schema as SQL-Eval's yelp",
    "formula_1": "the same schema as BIRD dev's formula_1",
    "soccer_1": "the same schema as BIRD dev's european_football_2",
}

ProgressFn = Callable[[str, str | None], None]  # (db_id, table being filled, or None when the database is done)


# --- schemas -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # Spider's coarse type: text, number, time, boolean, others
    sql_type: str  # the declared type: INTEGER, REAL, TEXT, DATE, DATETIME, BOOLEAN, BLOB
    kind: str  # what its values look like (see infer_kind)
    primary_key: bool = False
    not_null: bool = False


@dataclass(frozen=True)
class ForeignKeySpec:
    """`columns` of the owning table reference `ref_columns` of `ref_table` (one or several columns)."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKeySpec, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()  # column sets other tables reference that are not the primary key

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class SchemaSpec:
    db_id: str
    tables: tuple[TableSpec, ...]

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)

    def fingerprint(self) -> str:
        """sha256 of the schema as declared (names, types, keys): a changed schema is rebuilt on resume."""
        data = [[t.name, [[c.name, c.sql_type, c.kind, c.primary_key] for c in t.columns],
                 [[list(fk.columns), fk.ref_table, list(fk.ref_columns)] for fk in t.foreign_keys],
                 [list(u) for u in t.unique]] for t in self.tables]
        return hashlib.sha256(json.dumps([self.db_id, data]).encode()).hexdigest()


def load_schemas(tables_json: Path) -> list[SchemaSpec]:
    """Every schema in a Spider-format tables.json, in file order."""
    path = Path(tables_json)
    if not path.is_file():
        raise DatasetError(f"tables.json not found at {path}: pass --tables-json PATH or set SQLWRIGHT_DATA")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        return [schema_from_spider(e) for e in entries]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DatasetError(f"{path} is not a Spider tables.json: {exc}") from exc


def schema_from_spider(entry: Mapping) -> SchemaSpec:
    """One tables.json entry as a SchemaSpec: types from the coarse type and the column's name; the foreign
    key pairs grouped (pairs into one table that extend its primary key form one multi-column key); the
    primary key of a table whose listed key is one of its several foreign key columns widened to all of
    them (tables.json lists only the first column of a composite key); a UNIQUE constraint on every
    referenced column set that is not the referenced table's primary key (SQLite needs one for the key to
    be checkable)."""
    names = list(entry["table_names_original"])
    cols = [(t, c) for t, c in entry["column_names_original"]]
    types = list(entry["column_types"])
    pk_index = {i for i in entry["primary_keys"] if not isinstance(i, list)}
    pk_index |= {j for i in entry["primary_keys"] if isinstance(i, list) for j in i}
    pk_cols: dict[int, list[str]] = {}
    for i in sorted(pk_index):
        pk_cols.setdefault(cols[i][0], []).append(cols[i][1])
    # Group the foreign key pairs by (table, referenced table), without duplicates, in file order.
    groups: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for a, b in entry["foreign_keys"]:
        key = (cols[a][0], cols[b][0])
        pair = (cols[a][1], cols[b][1])
        if pair not in groups.setdefault(key, []):
            groups[key].append(pair)
    fks: dict[int, list[ForeignKeySpec]] = {}
    for (child, parent), pairs in groups.items():
        refs = [r for _, r in pairs]
        locals_ = [c for c, _ in pairs]
        parent_pk = set(pk_cols.get(parent, ()))
        composite = (len(pairs) > 1 and len(set(refs)) == len(refs) and len(set(locals_)) == len(locals_)
                     and bool(parent_pk) and parent_pk <= set(refs) and child != parent)
        specs = ([ForeignKeySpec(tuple(locals_), names[parent], tuple(refs))] if composite
                 else [ForeignKeySpec((c,), names[parent], (r,)) for c, r in pairs])
        fks.setdefault(child, []).extend(specs)
    # Spider's tables.json lists one column of a composite primary key (singer_in_concert: concert_ID only):
    # a listed key that is one of several foreign key columns stands for the key made of all of them.
    for ti, specs in fks.items():
        fk_columns = [c for t, c in cols if t == ti and any(c in fk.columns for fk in specs
                                                            if fk.ref_table != names[ti])]
        if len(pk_cols.get(ti, ())) == 1 and pk_cols[ti][0] in fk_columns and len(fk_columns) > 1:
            pk_cols[ti] = list(dict.fromkeys(fk_columns))
    unique: dict[int, list[tuple[str, ...]]] = {}
    for child_specs in fks.values():
        for fk in child_specs:
            parent = names.index(fk.ref_table)
            if set(fk.ref_columns) != set(pk_cols.get(parent, ())) and fk.ref_columns not in unique.get(parent, []):
                unique.setdefault(parent, []).append(fk.ref_columns)
    # Each column's (coarse type, kind, declared type); a foreign key takes its referenced column's, and a
    # text id referenced by number columns becomes a number (Spider types some ids text on one side only).
    shape: dict[tuple[int, str], tuple[str, str, str]] = {}
    for (t, cname), ctype in zip(cols, types, strict=True):
        if t >= 0 and (t, cname) not in shape:
            kind = infer_kind(names[t], cname, ctype)
            shape[(t, cname)] = (ctype, kind, sql_type_for(kind, ctype))
    links = [((ci, c), (names.index(fk.ref_table), r)) for ci, specs in sorted(fks.items()) for fk in specs
             for c, r in zip(fk.columns, fk.ref_columns, strict=True)]
    for _ in range(4):  # chains of keys settle in a few passes
        for child, parent in links:
            if shape[parent][2] == "TEXT" and shape[child][2] in ("INTEGER", "REAL") and shape[parent][1] in (
                    "code", "free", "category"):
                shape[parent] = ("number", "id_number", "INTEGER")
            shape[child] = shape[parent]
    tables = []
    for ti, tname in enumerate(names):
        if tname.lower().startswith("sqlite_"):  # SQLite's own (sqlite_sequence): created by AUTOINCREMENT
            continue
        pk = tuple(pk_cols.get(ti, ()))
        seen: set[str] = set()
        columns = []
        for t, cname in cols:
            if t != ti or cname.lower() in seen:
                continue
            seen.add(cname.lower())
            ctype, kind, sql_type = shape[(t, cname)]
            columns.append(ColumnSpec(cname, ctype, sql_type, kind, primary_key=cname in pk, not_null=cname in pk))
        tables.append(TableSpec(tname, tuple(columns), pk, tuple(fks.get(ti, ())), tuple(unique.get(ti, ()))))
    return SchemaSpec(str(entry["db_id"]), tuple(tables))


def evaluation_db_ids(spider_dir: Path | None) -> dict[str, str]:
    """Databases never synthesized, with the reason: Spider's dev databases (the built-in list, every folder
    under `spider_dir`/database, every db_id of `spider_dir`/dev.json) and the schemas that duplicate other
    benchmarks' evaluation databases."""
    out = {db: "a Spider dev (evaluation) database" for db in SPIDER_DEV_DB_IDS}
    out.update(DUPLICATES_OF_EVALUATION)
    if spider_dir is not None:
        database = Path(spider_dir) / "database"
        if database.is_dir():
            for child in sorted(database.iterdir()):
                if child.is_dir():
                    out.setdefault(child.name, "has rows under database/ (an evaluation database)")
        dev = Path(spider_dir) / "dev.json"
        if dev.is_file():
            try:
                for item in json.loads(dev.read_text(encoding="utf-8")):
                    out.setdefault(str(item["db_id"]), "a database of dev.json (an evaluation database)")
            except (ValueError, KeyError, TypeError) as exc:
                raise DatasetError(f"{dev} is not a Spider dev.json: {exc}") from exc
    return out


def select_schemas(schemas: Sequence[SchemaSpec], excluded: Mapping[str, str], only: Iterable[str] = (),
                   limit: int | None = None) -> list[SchemaSpec]:
    """The schemas to fill: those in `only` (all when empty) that are not `excluded`, the first `limit`.
    Naming an excluded or unknown database is a ConfigError."""
    by_id = {s.db_id: s for s in schemas}
    wanted = list(dict.fromkeys(only))
    for db_id in wanted:
        if db_id in excluded:
            raise ConfigError(f"{db_id} is never synthesized: {excluded[db_id]}")
        if db_id not in by_id:
            import difflib

            close = difflib.get_close_matches(db_id, list(by_id), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"no schema {db_id!r} in tables.json{hint}")
    chosen = [by_id[d] for d in wanted] if wanted else [s for s in schemas if s.db_id not in excluded]
    return chosen[:limit] if limit is not None else chosen


def default_tables_json() -> Path:
    """$SQLWRIGHT_DATA/spider/tables.json, else the repository's sibling shared/data."""
    env = os.environ.get("SQLWRIGHT_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return root / "spider" / "tables.json"


# --- what a column's values look like ----------------------------------------------------------------
def name_tokens(name: str) -> list[str]:
    """`name`'s words, lower case: 'ReportsTo' -> ['reports', 'to'], 'Home Town' -> ['home', 'town']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


_CATEGORY_TOKENS = {
    "type", "types", "status", "category", "categories", "class", "level", "role", "genre", "position", "result",
    "outcome", "method", "mode", "kind", "division", "conference", "league", "priority", "currency", "format",
    "tier", "stage", "round", "semester", "season", "shift", "party", "channel", "brand", "manufacturer",
    "department", "dept", "sector", "industry", "region", "grade", "rank", "pos", "payment", "reason",
    "condition", "source", "carrier", "airline", "model", "make", "species", "breed", "weather", "occupation",
    "major", "degree", "specialty", "speciality", "religion", "continent", "size", "county", "district", "label",
}
# Words that make a text column a category or a description even when another word sounds numeric
# ('payment_method_code', 'attribute_value').
_NOT_NUMERIC_TEXT = {"code", "method", "type", "description", "details", "name", "status", "value", "comment"}
_PERSON_TABLES = {
    "people", "person", "student", "students", "employee", "employees", "staff", "customer", "customers",
    "singer", "player", "players", "actor", "author", "authors", "driver", "drivers", "pilot", "teacher",
    "member", "members", "user", "users", "manager", "artist", "artists", "director", "writer", "coach",
    "physician", "nurse", "patient", "guest", "guests", "owner", "owners", "host", "editor", "professional",
    "professionals", "technician", "candidate", "candidates", "musician", "journalist", "representative",
    "instructor", "faculty", "professor", "gymnast", "climber", "conductor", "architect", "engineer",
    "engineers", "poker", "perpetrator", "individuals", "individual", "passenger", "voter",
}
_OPTIONAL_TOKENS = {"other", "middle", "fax", "notes", "comment", "comments", "remarks"}
_END_TOKENS = {"to": "from", "end": "start", "closed": "opened", "departed": "arrived", "out": "in",
               "left": "joined", "disposed": "acquired", "expires": "date", "settled": "made",
               "completion": "enrolment"}


def _number_kind(t: list[str], n: str) -> str | None:
    """A number's kind from its name's words, or None when the name says nothing."""
    ts = set(t)
    if ts & {"year", "founded", "built", "established", "inaugurated", "opened", "season"} or n.endswith("year"):
        return "birth_year" if "birth" in ts else "year"
    if "month" in ts:
        return "month_number"
    if t[-1] == "day":
        return "day_number"
    if "age" in ts:
        return "age"
    if ts & {"lat", "latitude"}:
        return "latitude"
    if ts & {"lng", "lon", "long", "longitude"}:
        return "longitude"
    if "height" in ts:
        return "height"
    if "weight" in ts:
        return "weight"
    if ts & {"area", "sqft", "acres", "hectares"}:
        return "area"
    if ts & {"temperature", "temp"}:
        return "temperature"
    if ts & {"elevation", "altitude"}:
        return "elevation"
    if ts & {"phone", "telephone", "fax"}:
        return "phone_digits"
    if ts & {"zip", "postcode"}:
        return "zip_number"
    if ts & {"percent", "percentage", "pct", "rate", "ratio", "share", "proportion", "humidity"}:
        return "percent"
    if ts & {"billion", "million", "billions", "millions"}:
        return "big_money"
    if ts & {"salary", "wage", "income", "earnings"}:
        return "salary"
    if "budget" in ts:
        return "budget"
    if ts & {"price", "cost", "fee", "fare", "charge", "charges", "rent", "tuition"} or "price" in n:
        return "price"
    if ts & {"amount", "payment", "paid", "balance", "revenue", "sales", "gross", "value", "worth", "profit",
             "profits", "assets", "spent", "tax", "money", "debt", "deposit", "claimed", "settled", "outstanding",
             "purchased", "bonus", "valuation", "equity", "turnover", "funding", "donation", "total"}:
        return "money"
    if ts & {"rating", "score", "scores", "mark", "marks"}:
        return "rating"
    if "stars" in ts or "star" in ts:
        return "stars"
    if "gpa" in ts:
        return "gpa"
    if (t and t[-1] in {"rank", "ranking", "position", "place", "seed", "standing"}) or "rank" in ts:
        return "rank"
    if "population" in ts:
        return "population"
    if ts & {"capacity", "attendance", "enrollment", "enrolment", "audience", "seats", "spectators", "visitors",
             "crowd", "seating"}:
        return "capacity"
    if ts & {"milliseconds", "ms"}:
        return "milliseconds"
    if ts & {"duration", "minutes", "runtime", "seconds", "length"}:
        return "minutes"
    if ts & {"hours", "hrs"}:
        return "hours"
    if ts & {"days", "nights"}:
        return "days"
    if ts & {"distance", "km", "miles", "mileage"}:
        return "distance"
    if ts & {"bytes", "filesize"}:
        return "bytes"
    if "ssn" in ts:
        return "ssn"
    if (ts & {"count", "num", "number", "quantity", "qty", "votes", "points", "wins", "losses", "goals",
              "killed", "injured", "crew", "employees", "members", "episodes", "shops", "floors", "stories",
              "rooms", "pages", "credits", "students", "games", "matches", "medals", "gold", "silver", "bronze",
              "years", "copies", "tracks", "awards", "apps", "caps", "tries", "wickets", "runs", "laps",
              "passengers", "beds", "units", "items", "stock", "inventory"}) or (t and t[0] in {"num", "no", "n"}):
        return "count"
    return None


def infer_kind(table: str, column: str, coarse: str) -> str:
    """What `column`'s values look like, from Spider's coarse type and the words of its name: a number kind
    (year, age, price, rating, count …), a text kind (email, phone, date, first_name, city, code …), or
    'category' / 'free' (text for which the model proposes a vocabulary)."""
    t = name_tokens(column) or [column.lower()]
    ts = set(t)
    n = "".join(t)
    if coarse == "boolean" or (coarse == "others" and t[0] in {"is", "if", "has", "can", "was", "allow"}):
        return "bool"
    if t[-1] == "yn" or t[-1] == "flag":
        return "yn"
    if coarse == "others" and ts & {"picture", "photo", "image", "blob", "logo", "thumbnail", "avatar"}:
        return "blob"
    if coarse == "time":
        if "year" in ts:
            return "year"
        if ts & {"datetime", "time", "timestamp", "start", "end", "logon", "created", "updated"} or "datetime" in n:
            return "datetime"
        return "birth_date" if ts & {"birth", "birthdate", "dob", "birthday"} or n.startswith("birth") else "date"
    if coarse == "number":
        number = _number_kind(t, n)
        if number:
            return number
        if t[-1] == "id" or (n.endswith("id") and len(n) > 2):
            return "id_number"
        return "small_count" if len(n) <= 3 else "integer"
    # text (and the few "others")
    if "email" in n:
        return "email"
    if ts & {"phone", "fax", "mobile", "cell", "tel", "telephone"}:
        return "phone"
    if ts & {"url", "homepage", "website", "web", "link"}:
        return "url"
    if "zip" in ts or "postcode" in n or "postal" in n:
        return "zip"
    if ts & {"password", "pwd", "passwd"}:
        return "password"
    if "datetime" in n or "timestamp" in ts or ("date" in ts and "time" in ts):
        return "datetime"
    if ts & {"date", "dob", "birthday"} or n.endswith("date"):
        return "birth_date" if ts & {"birth", "dob", "birthday"} or n.startswith("birth") or n == "bdate" else "date"
    if t == ["time"] or t[-1] == "time":
        return "time_of_day"
    if t in (["day"], ["weekday"]) or t[-1] == "weekday" or ts >= {"day", "week"}:
        return "weekday"
    if t == ["month"]:
        return "month"
    if ts & {"fname", "firstname", "givenname", "forename"} or ("first" in ts and "name" in ts) or (
            ts & {"personal", "given"} and "name" in ts):
        return "first_name"
    if ts & {"initial", "init", "minit"}:
        return "initial"
    if "middle" in ts:
        return "middle_name"
    if ts & {"lname", "lastname", "surname", "familyname"} or (
            ts & {"last", "family"} and "name" in ts):
        return "last_name"
    if ts & {"nationality", "citizenship"}:
        return "nationality"
    if ts & {"countrycode", "countryabbrev"} or ("country" in ts and ts & {"code", "abbrev", "abbreviation", "id"}):
        return "country_code"
    if ts & {"country", "countries"}:
        return "country"
    if "continent" in ts:
        return "continent"
    if ts & {"city", "town", "hometown", "headquarters", "headquarter", "capital"} or "city" in n or (
            "birth" in ts and "place" in ts):
        return "city"
    if ts & {"state", "province"}:
        return "state"
    if ("line" in ts and ts & {"2", "3"}) or "line2" in n or "line3" in n:
        return "address2"
    if ts & {"address", "street"} or ("line" in ts and "1" in ts) or "address" in n:
        return "address"
    if ts & {"language", "languages"}:
        return "language"
    if ts & {"color", "colour"}:
        return "color"
    if ts & {"iata", "icao", "airportcode", "abbrev", "abbreviation"} or n == "airportcode":
        return "letters"
    if "sex" in ts or "mf" in ts:
        return "gender_mf"
    if "gender" in ts:
        return "gender"
    categorical = bool(ts & _CATEGORY_TOKENS)
    if not categorical and (t[-1] in {"id", "code", "no", "number", "num", "ref"} or (n.endswith("id") and len(n) > 3)):
        return "code"
    # Numbers kept as text ('Age', 'Year', 'Rank' typed text): by the name's last word only.
    number = None if ts & _NOT_NUMERIC_TEXT else _number_kind(t[-1:], t[-1])
    if number and number not in {"phone_digits", "zip_number"}:
        return "text_" + number
    return "category" if categorical else "free"


def sql_type_for(kind: str, coarse: str) -> str:
    """The declared SQLite type of a column of `kind` (Spider's coarse type decides TEXT vs a number)."""
    if kind == "bool":
        return "BOOLEAN"
    if kind == "blob":
        return "BLOB"
    if coarse == "time":
        return "INTEGER" if kind == "year" else "DATETIME" if kind == "datetime" else "DATE"
    if coarse == "number":
        return "REAL" if kind in _REAL_KINDS else "INTEGER"
    return "TEXT"


_REAL_KINDS = {"latitude", "longitude", "big_money", "salary", "budget", "price", "money", "rating", "gpa",
               "height", "weight", "percent", "area"}
MODEL_KINDS = frozenset({"free", "category"})  # text kinds whose vocabulary the model proposes


# --- programmatic values -----------------------------------------------------------------------------
FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen", "Daniel",
    "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Wei", "Emily", "Steven", "Maria", "Paul",
    "Aisha", "Andrew", "Olivia", "Kenji", "Sofia", "Luca", "Fatima", "Ivan", "Chloe", "Omar", "Hannah", "Pedro",
    "Grace", "Ravi", "Anna", "Lars", "Yuki", "Diego", "Elena", "Samuel", "Nora", "Kwame", "Leah", "Hugo", "Mia",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson",
    "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen",
    "Hill", "Green", "Adams", "Baker", "Nelson", "Carter", "Mitchell", "Chen", "Kim", "Patel", "Müller", "Rossi",
    "Silva", "Kowalski", "Ivanova", "Tanaka", "Okafor", "Dubois", "Jensen", "Haddad", "Novak", "Schmidt", "Costa",
)
CITIES = (
    "New York", "London", "Paris", "Tokyo", "Berlin", "Madrid", "Rome", "Toronto", "Sydney", "Chicago", "Boston",
    "Seattle", "Austin", "Denver", "Dublin", "Amsterdam", "Vienna", "Prague", "Lisbon", "Barcelona", "Munich",
    "Milan", "Stockholm", "Oslo", "Copenhagen", "Helsinki", "Warsaw", "Budapest", "Athens", "Istanbul", "Cairo",
    "Nairobi", "Lagos", "Cape Town", "Mumbai", "Delhi", "Bangalore", "Singapore", "Seoul", "Beijing", "Shanghai",
    "Hong Kong", "Bangkok", "Jakarta", "Manila", "Melbourne", "Auckland", "Vancouver", "Montreal", "Mexico City",
    "Lima", "Bogota", "Santiago", "Buenos Aires", "Sao Paulo", "Rio de Janeiro", "Houston", "Phoenix", "Atlanta",
    "Miami", "Portland", "San Diego", "Dallas", "Philadelphia", "Detroit", "Minneapolis", "Nashville", "Osaka",
)
COUNTRIES = (
    "United States", "United Kingdom", "France", "Germany", "Japan", "China", "India", "Brazil", "Canada",
    "Australia", "Italy", "Spain", "Mexico", "Netherlands", "Sweden", "Norway", "Denmark", "Finland", "Poland",
    "Ireland", "Portugal", "Greece", "Turkey", "Egypt", "Kenya", "Nigeria", "South Africa", "South Korea",
    "Singapore", "Thailand", "Indonesia", "Argentina", "Chile", "Colombia", "Peru", "New Zealand", "Austria",
    "Switzerland", "Belgium", "Czech Republic", "Hungary", "Russia", "Ukraine", "Vietnam", "Philippines",
)
COUNTRY_CODES = ("USA", "GBR", "FRA", "DEU", "JPN", "CHN", "IND", "BRA", "CAN", "AUS", "ITA", "ESP", "MEX",
                 "NLD", "SWE", "NOR", "DNK", "FIN", "POL", "IRL", "PRT", "GRC", "TUR", "EGY", "KEN", "NGA")
NATIONALITIES = (
    "American", "British", "French", "German", "Japanese", "Chinese", "Indian", "Brazilian", "Canadian",
    "Australian", "Italian", "Spanish", "Mexican", "Dutch", "Swedish", "Norwegian", "Irish", "Polish", "Greek",
    "Korean", "Nigerian", "Kenyan", "Argentine", "Chilean", "Portuguese", "Russian", "Egyptian", "Turkish",
)
STATES = (
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware", "Florida",
    "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine",
    "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska",
    "Nevada", "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Ohio",
    "Oklahoma", "Oregon", "Pennsylvania", "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas",
    "Utah", "Vermont", "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming",
)
CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")
LANGUAGES = ("English", "Spanish", "French", "German", "Chinese", "Japanese", "Portuguese", "Italian", "Russian",
             "Arabic", "Hindi", "Korean", "Dutch", "Swedish", "Turkish", "Polish")
COLORS = ("Red", "Blue", "Green", "Black", "White", "Silver", "Yellow", "Orange", "Purple", "Grey", "Brown")
STREETS = ("Oak", "Maple", "Pine", "Cedar", "Elm", "Main", "Park", "Lake", "Hill", "River", "Sunset", "Church",
           "Mill", "Spring", "Highland", "Washington", "Lincoln", "Forest", "Meadow", "Harbor")
STREET_TYPES = ("Street", "Avenue", "Road", "Lane", "Drive", "Boulevard", "Court", "Way")
ADJECTIVES = ("Silver", "Golden", "Quiet", "Bright", "Northern", "Royal", "Green", "Blue", "Grand", "Little",
              "Old", "New", "Hidden", "Swift", "Crystal", "Iron", "Red", "Summer", "Winter", "Wild")
NOUNS = ("Harbor", "River", "Valley", "Star", "Garden", "Bridge", "Tower", "Forest", "Lake", "Mountain", "Field",
         "Stone", "Eagle", "Lion", "Oak", "Light", "Road", "Island", "Crown", "Wave")
SENTENCE_WORDS = ("quality", "service", "customer", "delivery", "review", "update", "request", "issue", "project",
                  "team", "schedule", "report", "order", "account", "payment", "record", "note", "detail")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NUMBER_RANGES: dict[str, tuple[float, float, int]] = {  # kind: (low, high, decimals; -1 means integer)
    "year": (1980, 2023, -1), "birth_year": (1940, 2005, -1), "age": (18, 75, -1), "latitude": (-60, 70, 4),
    "longitude": (-170, 170, 4), "big_money": (0.5, 400, 1), "salary": (25000, 180000, 0),
    "budget": (10000, 5000000, 0), "price": (2, 500, 2), "money": (10, 10000, 2), "rating": (1, 10, 1),
    "stars": (1, 5, -1), "gpa": (2, 4, 2), "rank": (1, 50, -1), "height": (150, 210, 1), "weight": (45, 120, 1),
    "percent": (0, 100, 1), "population": (1000, 5000000, -1), "capacity": (100, 80000, -1),
    "milliseconds": (90000, 420000, -1), "minutes": (5, 180, -1), "hours": (1, 60, -1), "days": (1, 365, -1),
    "distance": (10, 5000, -1), "area": (10, 5000, 1), "bytes": (100000, 9000000, -1),
    "ssn": (100000000, 999999999, -1), "count": (0, 100, -1), "small_count": (0, 150, -1),
    "integer": (1, 1000, -1), "id_number": (1, 500, -1), "month_number": (1, 12, -1), "day_number": (1, 28, -1),
    "temperature": (-10, 40, -1), "elevation": (0, 4000, -1), "phone_digits": (2002000000, 9899899999, -1),
    "zip_number": (10000, 99999, -1),
}


def programmatic_value(kind: str, rng: random.Random, table: str, column: str, serial: int) -> object:
    """One value of `kind` drawn with `rng` (`serial` numbers values that must differ, e.g. codes)."""
    if kind.startswith("text_"):
        return str(programmatic_value(kind[5:], rng, table, column, serial))
    if kind in _NUMBER_RANGES:
        low, high, decimals = _NUMBER_RANGES[kind]
        if decimals < 0:
            return rng.randint(int(low), int(high))
        value = round(rng.uniform(low, high), decimals)
        return float(value)
    if kind == "bool":
        return rng.randint(0, 1)
    if kind == "blob":
        return None
    if kind == "yn":
        return rng.choice(("Y", "N"))
    if kind in ("date", "birth_date", "datetime"):
        start = date(1950, 1, 1) if kind == "birth_date" else date(2000, 1, 1)
        span = (date(2005, 12, 31) if kind == "birth_date" else date(2023, 12, 31)) - start
        day = start + timedelta(days=rng.randint(0, span.days))
        if kind != "datetime":
            return day.isoformat()
        moment = datetime(day.year, day.month, day.day) + timedelta(seconds=rng.randint(0, 86399))
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if kind == "time_of_day":
        return f"{rng.randint(6, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}"
    if kind == "weekday":
        return rng.choice(WEEKDAYS)
    if kind == "month":
        return rng.choice(MONTHS)
    if kind in ("first_name", "middle_name"):
        return rng.choice(FIRST_NAMES)
    if kind == "last_name":
        return rng.choice(LAST_NAMES)
    if kind == "full_name":
        return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if kind == "email":
        return (f"{rng.choice(FIRST_NAMES).lower()}.{rng.choice(LAST_NAMES).lower()}{rng.randint(1, 99)}"
                f"@{rng.choice(('example.com', 'mail.com', 'example.org', 'inbox.net'))}").replace("ü", "u")
    if kind == "phone":
        return f"({rng.randint(200, 989)}) {rng.randint(200, 989)}-{rng.randint(0, 9999):04d}"
    if kind == "url":
        return f"https://www.{rng.choice(ADJECTIVES).lower()}{rng.choice(NOUNS).lower()}.com"
    if kind == "zip":
        return f"{rng.randint(10000, 99999)}"
    if kind == "password":
        return "".join(rng.choice("abcdefghijkmnopqrstuvwxyz23456789") for _ in range(10))
    if kind == "nationality":
        return rng.choice(NATIONALITIES)
    if kind == "country_code":
        return rng.choice(COUNTRY_CODES)
    if kind == "country":
        return rng.choice(COUNTRIES)
    if kind == "continent":
        return rng.choice(CONTINENTS)
    if kind == "city":
        return rng.choice(CITIES)
    if kind == "state":
        return rng.choice(STATES)
    if kind == "address":
        return f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}"
    if kind == "address2":
        return f"{rng.choice(('Apt.', 'Suite', 'Unit'))} {rng.randint(1, 999)}"
    if kind == "language":
        return rng.choice(LANGUAGES)
    if kind == "color":
        return rng.choice(COLORS)
    if kind == "initial":
        return rng.choice(_LETTERS)
    if kind == "letters":
        return "".join(rng.choice(_LETTERS) for _ in range(3))
    if kind == "gender_mf":
        return rng.choice(("M", "F"))
    if kind == "gender":
        return rng.choice(("Male", "Female"))
    if kind == "code":
        prefix = "".join(c for c in "".join(name_tokens(table)).upper() if c.isalpha())[:3] or "ID"
        return f"{prefix}{rng.randint(1000, 9999)}"
    return _fallback_text(kind, rng, table, column, serial)


def _fallback_text(kind: str, rng: random.Random, table: str, column: str, serial: int) -> str:
    """Text for a column the model gave no vocabulary for: names in people's tables, titles, sentences for
    descriptions, category words, else the column's name and a number."""
    t = set(name_tokens(column))
    if "name" in t and set(name_tokens(table)) & _PERSON_TABLES and not t & {"company", "team", "product"}:
        return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    if t & {"description", "details", "detail", "comment", "comments", "notes", "note", "text", "abstract"}:
        words = rng.sample(SENTENCE_WORDS, 4)
        return f"{words[0].capitalize()} {words[1]} for the {words[2]} {words[3]}."
    if t & {"name", "title"} and kind != "category":
        return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    label = " ".join(w.capitalize() for w in name_tokens(column) if w not in {"code", "id"}) or column
    if kind == "category":
        return f"{label} {rng.choice(_LETTERS[:5])}"
    return f"{label} {serial}"


# --- planning and filling ------------------------------------------------------------------------------
def creation_order(schema: SchemaSpec) -> tuple[list[str], set[tuple[str, int]]]:
    """Tables with referenced ones first (file order among equals) and the foreign keys (table, index) that
    point forward in that order because of a cycle: those are filled after every table (self-references are
    always filled after their own table and are not listed)."""
    remaining = [t.name for t in schema.tables]
    deps = {t.name: {fk.ref_table for fk in t.foreign_keys if fk.ref_table != t.name} for t in schema.tables}
    order: list[str] = []
    deferred: set[tuple[str, int]] = set()
    while remaining:
        ready = next((n for n in remaining if not (deps[n] & set(remaining))), None)
        if ready is None:  # a cycle: break it at the first remaining table
            ready = remaining[0]
            for i, fk in enumerate(schema.table(ready).foreign_keys):
                if fk.ref_table != ready and fk.ref_table in remaining:
                    deferred.add((ready, i))
        order.append(ready)
        remaining.remove(ready)
    return order, deferred


def _is_lookup(table: TableSpec) -> bool:
    t = name_tokens(table.name)
    return bool(t) and (t[0] == "ref" or t[-1] in {"types", "categories", "statuses", "codes", "genres",
                                                  "levels", "roles", "classes"})


def vocabulary_requests(schema: SchemaSpec, values_per_column: int = VALUES_PER_COLUMN) -> list[VocabularyRequest]:
    """One request per table with text columns whose values the model should propose (free text and
    categories that are not foreign keys), with the table's other columns and its neighbours as context."""
    out = []
    for table in schema.tables:
        fk_cols = {c for fk in table.foreign_keys for c in fk.columns}
        wanted = tuple((c.name, CATEGORY_VALUES if c.kind == "category" and c.name not in _unique_columns(table)
                        else values_per_column)
                       for c in table.columns if c.kind in MODEL_KINDS and c.name not in fk_cols)
        if not wanted:
            continue
        context = tuple((c.name, c.type) for c in table.columns if c.name not in dict(wanted))[:12]
        related = [fk.ref_table for fk in table.foreign_keys if fk.ref_table != table.name]
        related += [t.name for t in schema.tables if any(fk.ref_table == table.name for fk in t.foreign_keys)
                    and t.name != table.name]
        out.append(VocabularyRequest(schema.db_id, table.name, wanted, context, tuple(dict.fromkeys(related))[:8],
                                     ddl=create_table_sql(table)))
    return out


def _unique_columns(table: TableSpec) -> set[str]:
    """Columns whose values must differ on their own (a one-column primary key or UNIQUE set)."""
    sets = [table.primary_key, *table.unique]
    return {s[0] for s in sets if len(s) == 1}


def plan_rows(schema: SchemaSpec, rows: int, seed: int,
              vocabularies: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> dict[str, int]:
    """Rows to generate per table: around `rows` (2/3 to 4/3 of it, by seed), fewer in lookup tables (Ref_…,
    …_Types), at most as many as the referenced rows allow when a key is made of foreign keys, and at most
    the model's vocabulary when a unique text column draws from it."""
    vocabularies = vocabularies or {}
    order, _ = creation_order(schema)
    plan: dict[str, int] = {}
    for name in order:
        table = schema.table(name)
        rng = random.Random(f"{seed}/{schema.db_id}/{name}/rows")
        low = max(1, round(rows * 2 / 3))
        count = rng.randint(low, max(low, round(rows * 4 / 3)))
        if _is_lookup(table):
            count = min(count, rng.randint(4, 10))
        fk_of = {}
        for fk in table.foreign_keys:
            if fk.ref_table == name:  # a self-reference does not limit its own table's rows
                continue
            for c in fk.columns:
                fk_of.setdefault(c, fk)
        for key in [table.primary_key, *table.unique]:
            if key and all(c in fk_of for c in key):
                parents = {fk_of[c] for c in key}
                cap = math.prod(plan.get(fk.ref_table, count) for fk in parents if fk.ref_table != name)
                count = min(count, max(1, cap))
        vocab = vocabularies.get(name, {})
        for c in _unique_columns(table):
            if c not in fk_of and len(vocab.get(c, ())) >= 8:
                count = min(count, len(vocab[c]))
        plan[name] = count
    return plan


@dataclass
class TableData:
    """One table's generated rows (in column order) and where each column's values came from."""

    name: str
    columns: tuple[str, ...]
    rows: list[list[object]]
    sources: dict[str, str]  # column -> model | programmatic | foreign key | key


class _Deck:
    """Values drawn without repeats until the deck is empty, then reshuffled (or exhausted when unique)."""

    def __init__(self, values: Sequence[object], rng: random.Random, refill: bool) -> None:
        self.values = list(values)
        self.rng = rng
        self.refill = refill
        self.pile: list[object] = []
        self._shuffle()

    def _shuffle(self) -> None:
        self.pile = list(self.values)
        self.rng.shuffle(self.pile)

    def draw(self) -> object:
        if not self.pile:
            if not self.refill or not self.values:
                raise IndexError("deck exhausted")
            self._shuffle()
        return self.pile.pop()


class _Skewed:
    """Draws from `values` with a long tail: a few are drawn often, most sometimes, some (~15%) never."""

    def __init__(self, values: Sequence[object], rng: random.Random, unused: float = 0.15) -> None:
        order = list(values)
        rng.shuffle(order)
        keep = len(order) - int(len(order) * unused) if len(order) >= 5 else len(order)
        self.values = order[:max(1, keep)]
        self.cum = []
        total = 0.0
        for k in range(len(self.values)):
            total += 1.0 / (k + 1) ** 0.8
            self.cum.append(total)
        self.rng = rng

    def draw(self) -> object:
        return self.rng.choices(self.values, cum_weights=self.cum)[0]


def generate_rows(schema: SchemaSpec, *, seed: int, rows: int = DEFAULT_ROWS,
                  vocabularies: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> dict[str, TableData]:
    """Rows for every table of `schema`, reproducible from `seed` (and the vocabularies): keys unique, every
    foreign key value present in the referenced table (self-references and cycles filled last)."""
    vocabularies = vocabularies or {}
    order, deferred = creation_order(schema)
    plan = plan_rows(schema, rows, seed, vocabularies)
    data: dict[str, TableData] = {}
    for name in order:
        data[name] = _fill_table(schema, schema.table(name), plan[name], seed, vocabularies.get(name, {}), data,
                                 deferred)
    for name, index in sorted(deferred):  # cycles: each key drawn from its (now filled) referenced table
        _fill_later(schema.table(name), index, data, random.Random(f"{seed}/{schema.db_id}/{name}/cycle{index}"))
    return data


def _key_tuples(table: TableData, columns: Sequence[str]) -> list[tuple]:
    idx = [table.columns.index(c) for c in columns]
    seen: dict[tuple, None] = {}
    for row in table.rows:
        key = tuple(row[i] for i in idx)
        if None not in key:
            seen.setdefault(key, None)
    return list(seen)


def _fill_table(schema: SchemaSpec, table: TableSpec, count: int, seed: int, vocab: Mapping[str, Sequence[str]],
                data: Mapping[str, TableData], deferred: set[tuple[str, int]]) -> TableData:
    rng = random.Random(f"{seed}/{schema.db_id}/{table.name}")
    names = tuple(c.name for c in table.columns)
    # Columns filled after the rows (self-references, keys of a cycle) are not checked for uniqueness here.
    late = {c for i, fk in enumerate(table.foreign_keys) if fk.ref_table == table.name or (table.name, i) in deferred
            for c in fk.columns}
    unique_sets = [s for s in [table.primary_key, *table.unique] if s and not set(s) & late]
    unique_cols = {c for s in [table.primary_key, *table.unique] for c in s}
    single_unique = _unique_columns(table)
    sources: dict[str, str] = {}
    # Foreign keys filled now (not self-references, not deferred), with the values allowed for each.
    now: list[tuple[ForeignKeySpec, object]] = []
    later: list[ForeignKeySpec] = []
    for i, fk in enumerate(table.foreign_keys):
        if fk.ref_table == table.name:
            later.append(fk)
            for c in fk.columns:
                sources[c] = "foreign key"
            continue
        if (table.name, i) in deferred:
            for c in fk.columns:
                sources[c] = "foreign key"
            continue
        parent = data[fk.ref_table]
        tuples = _key_tuples(parent, fk.ref_columns)
        # A column under several foreign keys takes values all of them allow.
        for other in table.foreign_keys:
            if other is fk or other.ref_table == table.name or other.ref_table not in data:
                continue
            shared = [c for c in fk.columns if c in other.columns and len(other.columns) == 1]
            for c in shared:
                allowed = {k[0] for k in _key_tuples(data[other.ref_table], other.ref_columns)}
                pos = fk.columns.index(c)
                filtered = [k for k in tuples if k[pos] in allowed]
                tuples = filtered or tuples
        keyed = any(set(s) <= set(fk.columns) for s in unique_sets)  # a key made of this foreign key: 1:1
        frng = random.Random(f"{seed}/{schema.db_id}/{table.name}/fk{i}")
        drawer: object = _Deck(tuples, frng, refill=False) if keyed else _Skewed(tuples, frng) if tuples else None
        now.append((fk, drawer))
        for c in fk.columns:
            sources[c] = "foreign key"
    # Junction tables (several foreign keys, no key of their own): avoid repeating a combination.
    soft_key = tuple(c for fk, _ in now for c in fk.columns) if not unique_sets and len(now) > 1 else ()
    # Value sources for the other columns.
    draws: dict[str, Callable[[int], object]] = {}
    null_share: dict[str, float] = {}
    for col in table.columns:
        if col.name in sources:
            continue
        crng = random.Random(f"{seed}/{schema.db_id}/{table.name}/{col.name}")
        words = vocab.get(col.name)
        serial_pk = (col.primary_key and len(table.primary_key) == 1 and col.sql_type == "INTEGER"
                     and col.kind in {"id_number", "integer", "small_count", "count", "rank"})
        if serial_pk:
            sources[col.name] = "key"
            draws[col.name] = lambda i: i + 1
            continue
        if words and col.kind in MODEL_KINDS:
            sources[col.name] = "model"
            if col.name in single_unique:
                deck = _Deck(words, crng, refill=False)
                draws[col.name] = _unique_then(deck, col, crng, table.name)
            elif col.kind == "category":
                head = list(words)[:max(2, min(len(words), crng.randint(3, 6)))]
                skew = _Skewed(head, crng, unused=0.0)
                draws[col.name] = lambda i, s=skew: s.draw()
            else:
                deck = _Deck(words, crng, refill=True)
                draws[col.name] = lambda i, d=deck: d.draw()
        else:
            sources[col.name] = "programmatic"
            draws[col.name] = _programmatic_draw(col, crng, table.name, col.name in single_unique)
        toks = set(name_tokens(col.name))
        if not col.not_null and col.name not in unique_cols and (
                toks & _OPTIONAL_TOKENS or col.kind == "address2" or col.kind == "middle_name"
                or (col.kind in {"date", "datetime"} and name_tokens(col.name)[-1] in _END_TOKENS)):
            null_share[col.name] = 0.25
    ends = _date_pairs(table)
    ranges = [(a, b) for a, b in _range_pairs(table) if sources[a] == sources[b] == "programmatic"]
    out: list[list[object]] = []
    seen: dict[tuple[str, ...], set[tuple]] = {s: set() for s in unique_sets}
    seen_soft: set[tuple] = set()
    position = {c: k for k, c in enumerate(names)}
    for _ in range(count):
        row: list[object] | None = None
        for attempt in range(40):
            candidate: list[object] = [None] * len(names)
            try:
                for fk, drawer in now:
                    if drawer is None:
                        continue
                    key = drawer.draw()
                    for c, v in zip(fk.columns, key, strict=True):
                        candidate[position[c]] = v
                for c, draw in draws.items():
                    candidate[position[c]] = draw(len(out))
            except IndexError:  # a unique source ran out of values: this table is full
                row = None
                break
            for c, share in null_share.items():
                if rng.random() < share:
                    candidate[position[c]] = None
            for end, start in ends.items():
                begin = candidate[position[start]]
                if candidate[position[end]] is not None and begin is not None:
                    candidate[position[end]] = _after(begin, rng)
            for low, high in ranges:
                a, b = candidate[position[low]], candidate[position[high]]
                if isinstance(a, int | float) and isinstance(b, int | float) and a > b:
                    candidate[position[low]], candidate[position[high]] = b, a
            keys = {s: tuple(candidate[position[c]] for c in s) for s in unique_sets}
            if any(k in seen[s] or None in k for s, k in keys.items()):
                continue
            if soft_key and attempt < 10 and tuple(candidate[position[c]] for c in soft_key) in seen_soft:
                continue
            row = candidate
            break
        if row is None:
            log.debug("%s.%s: %d of %d rows (its keys ran out)", schema.db_id, table.name, len(out), count)
            break
        for s, k in ((s, tuple(row[position[c]] for c in s)) for s in unique_sets):
            seen[s].add(k)
        if soft_key:
            seen_soft.add(tuple(row[position[c]] for c in soft_key))
        out.append(row)
    result = TableData(table.name, names, out, {c: sources[c] for c in names})
    for fk in later:
        _fill_self_reference(result, fk, rng, table)
    return result


def _unique_then(deck: _Deck, col: ColumnSpec, rng: random.Random, table: str) -> Callable[[int], object]:
    """Distinct vocabulary values, then (when they run out) distinct programmatic ones."""
    used: set[object] = set()

    def draw(i: int) -> object:
        try:
            value = deck.draw()
        except IndexError:
            value = programmatic_value(col.kind, rng, table, col.name, i + 1)
            if value in used:
                value = f"{value} {i + 1}"
        used.add(value)
        return value

    return draw


def _programmatic_draw(col: ColumnSpec, rng: random.Random, table: str, unique: bool) -> Callable[[int], object]:
    kind = "free" if unique and col.kind == "category" else col.kind  # a category has few values: not unique
    if col.sql_type in ("INTEGER", "REAL") and not kind.startswith("text_") and kind not in _NUMBER_RANGES | {
            "bool": 0, "blob": 0}:
        kind = "integer"  # a number column whose name suggested text (e.g. a numeric 'code'): numbers
    if not unique:
        return lambda i: programmatic_value(kind, rng, table, col.name, i + 1)
    used: set[object] = set()

    def draw(i: int) -> object:  # distinct values: retry a few times, then make the value distinct
        for _ in range(20):
            value = programmatic_value(kind, rng, table, col.name, i + 1)
            if value not in used:
                break
        else:
            if isinstance(value, int):
                value = max(v for v in used if isinstance(v, int)) + 1
            elif isinstance(value, float):
                value = round(value + i + 1, 2)
            else:
                value = f"{value} {i + 1}"
        used.add(value)
        return value

    return draw


def _date_pairs(table: TableSpec) -> dict[str, str]:
    """End date column -> its start column (date_to -> date_from, end_date -> start_date …)."""
    dated = {tuple(name_tokens(c.name)): c.name for c in table.columns
             if c.kind in {"date", "datetime"} and not c.primary_key}
    pairs = {}
    for toks, name in dated.items():
        for k, tok in enumerate(toks):
            if tok in _END_TOKENS:
                start = toks[:k] + (_END_TOKENS[tok],) + toks[k + 1:]
                if start in dated and dated[start] != name:
                    pairs[name] = dated[start]
                    break
    return pairs


_RANGE_WORDS = {"min": "max", "minimum": "maximum", "low": "high", "lowest": "highest"}


def _range_pairs(table: TableSpec) -> list[tuple[str, str]]:
    """(low, high) number columns of one quantity: MIN_SALARY/MAX_SALARY, low_estimate/high_estimate …"""
    by_tokens = {tuple(name_tokens(c.name)): c.name for c in table.columns
                 if c.sql_type in ("INTEGER", "REAL") and not c.primary_key}
    pairs = []
    for toks, name in by_tokens.items():
        for k, tok in enumerate(toks):
            if tok in _RANGE_WORDS:
                other = toks[:k] + (_RANGE_WORDS[tok],) + toks[k + 1:]
                if other in by_tokens:
                    pairs.append((name, by_tokens[other]))
                break
    return pairs


def _after(begin: object, rng: random.Random) -> object:
    text = str(begin)
    try:
        if len(text) > 10:
            moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S") + timedelta(days=rng.randint(1, 400),
                                                                             seconds=rng.randint(0, 86399))
            return moment.strftime("%Y-%m-%d %H:%M:%S")
        return (date.fromisoformat(text) + timedelta(days=rng.randint(1, 400))).isoformat()
    except ValueError:
        return begin


def _in_unique_set(table: TableSpec, columns: Sequence[str]) -> bool:
    return any(s and set(s) <= set(columns) for s in (table.primary_key, *table.unique))


def _fill_self_reference(data: TableData, fk: ForeignKeySpec, rng: random.Random, table: TableSpec) -> None:
    """Each row references an earlier row of its own table (a hierarchy: the first rows are its roots; a chain,
    each row its predecessor, when the referencing columns must be unique)."""
    idx = [data.columns.index(c) for c in fk.columns]
    ref = [data.columns.index(c) for c in fk.ref_columns]
    nullable = not any(table.column(c).not_null for c in fk.columns)
    chain = _in_unique_set(table, fk.columns)
    for i, row in enumerate(data.rows):
        earlier = [r for r in data.rows[:i] if None not in (r[k] for k in ref)]
        if not earlier:
            value: list[object] = [None] * len(idx) if nullable else [row[k] for k in ref]  # a root (or itself)
        elif chain:
            value = [earlier[-1][k] for k in ref]
        elif nullable and rng.random() < 0.2:
            value = [None] * len(idx)
        else:
            target = earlier[min(int(rng.expovariate(0.4)), len(earlier) - 1)]
            value = [target[k] for k in ref]
        for k, v in zip(idx, value, strict=True):
            row[k] = v


def _fill_later(table: TableSpec, index: int, data: Mapping[str, TableData], rng: random.Random) -> None:
    """A foreign key of a cycle, drawn from its referenced table once every table is filled (without
    repeats when the columns must be unique; NULL when the keys run out or, now and then, when allowed)."""
    fk = table.foreign_keys[index]
    own = data[table.name]
    tuples = _key_tuples(data[fk.ref_table], fk.ref_columns)
    idx = [own.columns.index(c) for c in fk.columns]
    nullable = not any(table.column(c).not_null for c in fk.columns)
    unique = _in_unique_set(table, fk.columns)
    pool = list(tuples)
    rng.shuffle(pool)
    for row in own.rows:
        if unique:
            key = pool.pop() if pool else None
        else:
            key = None if (nullable and rng.random() < 0.1) or not tuples else rng.choice(tuples)
        for pos, k in enumerate(idx):
            row[k] = None if key is None else key[pos]


# --- writing and checking ------------------------------------------------------------------------------
def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(table: TableSpec) -> str:
    """CREATE TABLE with the column types, NOT NULL on keys, PRIMARY KEY, UNIQUE and FOREIGN KEY clauses."""
    parts = [f"  {quote(c.name)} {c.sql_type}" + (" NOT NULL" if c.not_null else "") for c in table.columns]
    if table.primary_key:
        parts.append(f"  PRIMARY KEY ({', '.join(map(quote, table.primary_key))})")
    for u in table.unique:
        parts.append(f"  UNIQUE ({', '.join(map(quote, u))})")
    for fk in table.foreign_keys:
        parts.append(f"  FOREIGN KEY ({', '.join(map(quote, fk.columns))}) REFERENCES {quote(fk.ref_table)} "
                     f"({', '.join(map(quote, fk.ref_columns))})")
    return f"CREATE TABLE {quote(table.name)} (\n" + ",\n".join(parts) + "\n)"


@dataclass(frozen=True)
class DatabaseCheck:
    """What a written database was checked for: foreign key violations, rows per table, rows each foreign
    key's join returns (a join with no rows makes the data useless for SQL over that key)."""

    foreign_key_violations: int
    rows: dict[str, int]
    joins: dict[str, int]

    @property
    def empty_joins(self) -> list[str]:
        return [k for k, v in self.joins.items() if v == 0]


def check_database(path: Path, schema: SchemaSpec) -> DatabaseCheck:
    """Opens `path` read-only: `PRAGMA foreign_key_check`, row counts, and each foreign key's join size."""
    con = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        violations = len(con.execute("PRAGMA foreign_key_check").fetchall())
        rows = {t.name: con.execute(f"SELECT count(*) FROM {quote(t.name)}").fetchone()[0] for t in schema.tables}
        joins = {}
        for t in schema.tables:
            for fk in t.foreign_keys:
                on = " AND ".join(f"c.{quote(a)} = p.{quote(b)}" for a, b in zip(fk.columns, fk.ref_columns,
                                                                                  strict=True))
                label = f"{t.name}({', '.join(fk.columns)}) -> {fk.ref_table}({', '.join(fk.ref_columns)})"
                joins[label] = con.execute(f"SELECT count(*) FROM {quote(t.name)} AS c JOIN {quote(fk.ref_table)} "
                                           f"AS p ON {on}").fetchone()[0]
        return DatabaseCheck(violations, rows, joins)
    finally:
        con.close()


def write_database(path: Path, schema: SchemaSpec, data: Mapping[str, TableData]) -> str:
    """Write `data` to the SQLite file `path` (tables created and filled in dependency order), through a
    temporary file renamed into place: `path` is never half-written. Returns the file's sha256."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    order, _ = creation_order(schema)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-journal"):
            Path(f"{temp}{suffix}").unlink(missing_ok=True)
        con = sqlite3.connect(temp, isolation_level=None)
        try:
            con.execute("BEGIN")
            for name in order:
                con.execute(create_table_sql(schema.table(name)))
            for name in order:
                table = data[name]
                marks = ", ".join("?" for _ in table.columns)
                con.executemany(f"INSERT INTO {quote(name)} VALUES ({marks})", table.rows)
            con.execute("COMMIT")
        finally:
            con.close()
        with open(temp, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except (sqlite3.Error, OSError) as exc:
        temp.unlink(missing_ok=True)
        raise DatasetError(f"could not write {path}: {exc}") from exc
    return digest


def database_path(out_dir: Path, db_id: str) -> Path:
    """Where `db_id` is written: OUT/<db_id>/<db_id>.sqlite (Spider's and BIRD's layout)."""
    return Path(out_dir) / db_id / f"{db_id}.sqlite"


# --- the run: vocabularies, databases, manifest ---------------------------------------------------------
@dataclass
class SynthSummary:
    """What a `synthesize_databases` run did."""

    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # already in the output with this configuration
    tables: int = 0
    rows: int = 0
    model_calls: int = 0
    cached_replies: int = 0
    failed_columns: int = 0
    foreign_key_violations: int = 0
    empty_joins: list[str] = field(default_factory=list)
    seconds: float = 0.0
    manifest: Path | None = None


def read_manifest(out_dir: Path) -> dict:
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except ValueError:
        log.warning("%s is not JSON; it is rewritten", path)
        return {}


def _write_json(path: Path, data: object) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, path)


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def build_database(schema: SchemaSpec, out_dir: Path, *, seed: int, rows: int = DEFAULT_ROWS,
                   vocabularies: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> dict:
    """Generate, write and check one database; returns its manifest entry (without the run's settings)."""
    began = time.perf_counter()
    data = generate_rows(schema, seed=seed, rows=rows, vocabularies=vocabularies)
    path = database_path(out_dir, schema.db_id)
    digest = write_database(path, schema, data)
    check = check_database(path, schema)
    if check.foreign_key_violations:
        log.error("%s: %d foreign key violations", schema.db_id, check.foreign_key_violations)
    vocab = vocabularies or {}
    tables = []
    for t in schema.tables:
        cols = {}
        for c in t.columns:
            info: dict[str, object] = {"type": c.sql_type, "kind": c.kind, "source": data[t.name].sources[c.name]}
            if info["source"] == "model":
                info["vocabulary"] = len(vocab[t.name][c.name])
            cols[c.name] = info
        tables.append({"name": t.name, "rows": check.rows[t.name], "primary_key": list(t.primary_key),
                       "columns": cols})
    return {
        "db_id": schema.db_id,
        "path": str(path.relative_to(out_dir)),
        "sha256": digest,
        "bytes": path.stat().st_size,
        "tables": tables,
        "foreign_keys": check.joins,
        "checks": {"foreign_key_violations": check.foreign_key_violations, "empty_joins": check.empty_joins},
        "seconds": round(time.perf_counter() - began, 3),
    }


def synthesize_databases(schemas: Sequence[SchemaSpec], out_dir: Path, *, llm: LLM | None = None, seed: int = 0,
                         rows: int = DEFAULT_ROWS, values_per_column: int = VALUES_PER_COLUMN,
                         excluded: Mapping[str, str] | None = None, source: str | None = None,
                         on_progress: ProgressFn | None = None) -> SynthSummary:
    """Fill each of `schemas` into OUT/<db_id>/<db_id>.sqlite and record it in OUT/databases.json.

    With `llm`, text columns take the vocabularies it proposes (kept in OUT/vocabulary.jsonl, so a run
    started again asks nothing twice); without, every value is programmatic. A database already in the
    manifest with the same settings (seed, rows, model, schema, generator) and an unchanged file is kept.
    `excluded` (db_id -> reason; the evaluation databases are always in it) is refused."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a folder")
    if rows < 1:
        raise ConfigError("rows must be at least 1")
    never = {**evaluation_db_ids(None), **(excluded or {})}
    for schema in schemas:
        if schema.db_id in never:
            raise ConfigError(f"{schema.db_id} is never synthesized: {never[schema.db_id]}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    manifest = read_manifest(out_dir)
    entries = {e["db_id"]: e for e in manifest.get("databases", []) if isinstance(e, dict) and "db_id" in e}
    cache = VocabularyCache(out_dir / WORK_FILE_NAME) if llm is not None else None
    vocabulary_from = getattr(llm, "name", type(llm).__name__) if llm is not None else "programmatic"
    summary = SynthSummary(manifest=out_dir / MANIFEST_NAME)
    for schema in schemas:
        settings = {"seed": seed, "rows_option": rows, "vocabulary_from": vocabulary_from,
                    "values_per_column": values_per_column, "schema_sha256": schema.fingerprint(),
                    "generator": GENERATOR_VERSION,
                    "prompt": VOCABULARY_PROMPT_VERSION if llm is not None else None}
        old = entries.get(schema.db_id)
        path = database_path(out_dir, schema.db_id)
        if (old and old.get("complete") and all(old.get(k) == v for k, v in settings.items())
                and _file_sha256(path) == old.get("sha256")):
            summary.reused.append(schema.db_id)
            _count(summary, old)
            if on_progress:
                on_progress(schema.db_id, None)
            continue
        stats = VocabularyStats()
        vocabularies: dict[str, dict[str, list[str]]] = {}
        if llm is not None:
            for request in vocabulary_requests(schema, values_per_column):
                if on_progress:
                    on_progress(schema.db_id, request.table)
                vocabularies[request.table] = propose_vocabulary(llm, request, cache, stats)
        entry = build_database(schema, out_dir, seed=seed, rows=rows, vocabularies=vocabularies)
        entry.update(settings)
        entry.update({"complete": stats.request_failures == 0, "model_calls": stats.model_calls,
                      "cached_replies": stats.cached, "model_seconds": round(stats.seconds, 3),
                      "failed_columns": stats.failures})
        entries[schema.db_id] = entry
        summary.built.append(schema.db_id)
        summary.model_calls += stats.model_calls
        summary.cached_replies += stats.cached
        summary.failed_columns += len(stats.failures)
        _count(summary, entry)
        _write_json(out_dir / MANIFEST_NAME, {
            "format": MANIFEST_FORMAT,
            "generator": GENERATOR_VERSION,
            "source": source if source is not None else manifest.get("source"),
            "excluded": dict(sorted(never.items())),
            "databases": [entries[k] for k in sorted(entries)],
        })
        if on_progress:
            on_progress(schema.db_id, None)
    summary.seconds = time.perf_counter() - began
    return summary


def _count(summary: SynthSummary, entry: Mapping) -> None:
    summary.tables += len(entry.get("tables", ()))
    summary.rows += sum(int(t.get("rows", 0)) for t in entry.get("tables", ()))
    checks = entry.get("checks", {})
    summary.foreign_key_violations += int(checks.get("foreign_key_violations", 0))
    summary.empty_joins += [f"{entry['db_id']}: {j}" for j in checks.get("empty_joins", ())]
