"""`synth databases`: Spider schemas without rows filled into SQLite files that keep their keys, never an
evaluation database, reproducible by seed, with model vocabularies parsed leniently and a run that
resumes after SIGKILL without asking the model again."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlwright.cli import app
from sqlwright.db import open_database
from sqlwright.errors import ConfigError, DatasetError
from sqlwright.llm.mock import ScriptedLLM
from sqlwright.synth.databases import (
    DUPLICATES_OF_EVALUATION,
    MANIFEST_NAME,
    SPIDER_DEV_DB_IDS,
    WORK_FILE_NAME,
    SchemaSpec,
    build_database,
    creation_order,
    database_path,
    evaluation_db_ids,
    generate_rows,
    infer_kind,
    load_schemas,
    schema_from_spider,
    select_schemas,
    synthesize_databases,
    vocabulary_requests,
)
from sqlwright.synth.vocabulary import (
    VocabularyCache,
    VocabularyRequest,
    VocabularyStats,
    build_messages,
    clean_values,
    parse_vocabulary,
    propose_vocabulary,
)

# Composite foreign keys (college_2), self-references (chinook_1, store_1), a self-reference Spider got wrong
# (musical), a number key referencing a text key (performance_attendance), foreign keys to non-key columns
# (baseball_1, wine_1), a cycle-free chain of Ref_ tables (cre_Doc_Tracking_DB).
SAMPLE = ["college_2", "chinook_1", "store_1", "musical", "performance_attendance", "baseball_1", "wine_1",
          "cre_Doc_Tracking_DB"]


@pytest.fixture(scope="module")
def spider_dir(data_dir: Path) -> Path:
    path = data_dir / "spider"
    if not (path / "tables.json").is_file():
        pytest.skip(f"Spider tables.json not found under {path}")
    return path


@pytest.fixture(scope="module")
def schemas(spider_dir: Path) -> dict[str, SchemaSpec]:
    return {s.db_id: s for s in load_schemas(spider_dir / "tables.json")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_rows(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: con.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}
    finally:
        con.close()


def assert_keys_hold(path: Path, schema: SchemaSpec) -> None:
    """Foreign keys checked by SQLite, primary keys unique and not NULL, every foreign key join non-empty,
    and sqlwright's introspection sees the same keys."""
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for table in schema.tables:
            q = f'"{table.name}"'
            assert con.execute(f"SELECT count(*) FROM {q}").fetchone()[0] > 0, table.name
            if table.primary_key:
                cols = ", ".join(f'"{c}"' for c in table.primary_key)
                dup = con.execute(f"SELECT {cols}, count(*) FROM {q} GROUP BY {cols} HAVING count(*) > 1").fetchall()
                assert dup == [], (table.name, dup[:3])
                nulls = " OR ".join(f'"{c}" IS NULL' for c in table.primary_key)
                assert con.execute(f"SELECT count(*) FROM {q} WHERE {nulls}").fetchone()[0] == 0
            for fk in table.foreign_keys:
                on = " AND ".join(f'c."{a}" = p."{b}"' for a, b in zip(fk.columns, fk.ref_columns, strict=True))
                joined = con.execute(f'SELECT count(*) FROM {q} c JOIN "{fk.ref_table}" p ON {on}').fetchone()[0]
                assert joined > 0, (table.name, fk)
    finally:
        con.close()
    with open_database(f"sqlite:///{path}") as db:
        seen = db.schema()
        for table in schema.tables:
            got = seen.table(table.name)
            assert got is not None and tuple(got.primary_key) == table.primary_key
            assert {(fk.columns, fk.ref_table, fk.ref_columns) for fk in got.foreign_keys} == {
                (fk.columns, fk.ref_table, fk.ref_columns) for fk in table.foreign_keys}
        first = schema.tables[0].name
        assert db.execute(f'SELECT count(*) FROM "{first}"').rows[0][0] > 0


# --- keys, types, reproducibility ---------------------------------------------------------------------------
@pytest.mark.parametrize("db_id", SAMPLE)
def test_a_filled_schema_keeps_its_keys(schemas, db_id: str, tmp_path: Path) -> None:
    schema = schemas[db_id]
    entry = build_database(schema, tmp_path, seed=0)
    path = database_path(tmp_path, db_id)
    assert entry["checks"] == {"foreign_key_violations": 0, "empty_joins": []}
    assert_keys_hold(path, schema)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_rows(schemas, tmp_path: Path) -> None:
    schema = schemas["college_2"]
    a = build_database(schema, tmp_path / "a", seed=0)
    b = build_database(schema, tmp_path / "b", seed=0)
    c = build_database(schema, tmp_path / "c", seed=1)
    pa, pb, pc = (database_path(tmp_path / d, "college_2") for d in "abc")
    assert pa.read_bytes() == pb.read_bytes() and a["sha256"] == b["sha256"] == sha256(pa)
    assert c["sha256"] != a["sha256"]
    rows_a, rows_c = table_rows(pa), table_rows(pc)
    assert rows_a.keys() == rows_c.keys() and rows_a != rows_c
    assert rows_a["instructor"] != rows_c["instructor"]


def test_a_seed_gives_the_same_rows_in_a_new_process(schemas, spider_dir, tmp_path: Path) -> None:
    """Nothing depends on the process (hash randomisation of sets and strings)."""
    here = build_database(schemas["store_1"], tmp_path / "here", seed=7)
    tables_json = str(spider_dir / "tables.json")
    script = (f"from pathlib import Path; from sqlwright.synth.databases import *; "
              f"s = {{x.db_id: x for x in load_schemas(Path({tables_json!r}))}}['store_1']; "
              f"print(build_database(s, Path({str(tmp_path / 'there')!r}), seed=7)['sha256'])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == here["sha256"]


def test_rows_vary_per_table_around_the_option(schemas) -> None:
    data = generate_rows(schemas["college_2"], seed=0, rows=12)
    counts = {name: len(t.rows) for name, t in data.items()}
    assert all(1 <= n <= 16 for n in counts.values()), counts
    assert len(set(counts.values())) > 1
    default = generate_rows(schemas["college_2"], seed=0)
    assert all(n <= 60 for n in (len(t.rows) for t in default.values()))
    assert max(len(t.rows) for t in default.values()) >= 30


@pytest.mark.slow
def test_every_schema_without_rows_is_filled_and_none_is_an_evaluation_database(schemas, spider_dir,
                                                                                tmp_path: Path) -> None:
    excluded = evaluation_db_ids(spider_dir)
    chosen = select_schemas(list(schemas.values()), excluded)
    assert len(chosen) == len(schemas) - len(set(schemas) & set(excluded))
    summary = synthesize_databases(chosen, tmp_path, seed=0, excluded=excluded)
    assert summary.foreign_key_violations == 0 and summary.empty_joins == []
    made = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert made == {s.db_id for s in chosen}
    with_rows = {p.name for p in (spider_dir / "database").iterdir() if p.is_dir()}
    assert not made & (with_rows | SPIDER_DEV_DB_IDS | set(DUPLICATES_OF_EVALUATION))
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert [e["db_id"] for e in manifest["databases"]] == sorted(made)
    assert set(manifest["excluded"]) >= with_rows
    entry = manifest["databases"][0]
    assert {"path", "sha256", "seed", "tables", "foreign_keys", "vocabulary_from"} <= set(entry)
    assert all(c["source"] in {"key", "foreign key", "programmatic"} for t in entry["tables"]
               for c in t["columns"].values())


def test_evaluation_databases_are_refused_by_name(schemas, spider_dir, tmp_path: Path) -> None:
    excluded = evaluation_db_ids(spider_dir)
    assert set(excluded) >= SPIDER_DEV_DB_IDS | {"yelp", "formula_1"}
    for item in json.loads((spider_dir / "dev.json").read_text()):
        assert item["db_id"] in excluded
    with pytest.raises(ConfigError, match="evaluation"):
        select_schemas(list(schemas.values()), excluded, only=["concert_singer"])
    with pytest.raises(ConfigError, match="did you mean wine_1"):
        select_schemas(list(schemas.values()), excluded, only=["wine"])
    # The library refuses them even when the caller forgot to exclude them.
    with pytest.raises(ConfigError, match="never synthesized"):
        synthesize_databases([schemas["concert_singer"]], tmp_path, excluded={})
    assert not any(tmp_path.iterdir())


# --- schemas that need care ---------------------------------------------------------------------------------
def spider_entry(db_id: str, tables: dict[str, list[tuple[str, str]]], pks: list[tuple[str, str]],
                 fks: list[tuple[tuple[str, str], tuple[str, str]]]) -> dict:
    """A tables.json entry from {table: [(column, type)]}, primary keys and foreign keys by name."""
    names = list(tables)
    cols: list[list] = [[-1, "*"]]
    types = ["text"]
    for ti, name in enumerate(names):
        for col, ctype in tables[name]:
            cols.append([ti, col])
            types.append(ctype)

    def index(table: str, column: str) -> int:
        return cols.index([names.index(table), column])

    return {"db_id": db_id, "table_names_original": names, "table_names": names, "column_names_original": cols,
            "column_names": cols, "column_types": types, "primary_keys": [index(*p) for p in pks],
            "foreign_keys": [[index(*a), index(*b)] for a, b in fks]}


def test_cycles_self_references_and_composite_keys(tmp_path: Path) -> None:
    entry = spider_entry(
        "cyclic_synth",
        {"dept": [("dept_id", "number"), ("name", "text"), ("head_id", "number")],
         "emp": [("emp_id", "number"), ("name", "text"), ("dept_id", "number"), ("manager_id", "number")],
         "room": [("building", "text"), ("room_no", "text"), ("capacity", "number")],
         "meeting": [("meeting_id", "number"), ("building", "text"), ("room_no", "text"), ("date", "time")]},
        pks=[("dept", "dept_id"), ("emp", "emp_id"), ("room", "building"), ("meeting", "meeting_id")],
        fks=[(("dept", "head_id"), ("emp", "emp_id")), (("emp", "dept_id"), ("dept", "dept_id")),
             (("emp", "manager_id"), ("emp", "emp_id")), (("meeting", "building"), ("room", "building")),
             (("meeting", "room_no"), ("room", "room_no"))],
    )
    schema = schema_from_spider(entry)
    order, deferred = creation_order(schema)
    assert order.index("room") < order.index("meeting") and len(deferred) == 1
    meeting = schema.table("meeting")
    assert [(fk.columns, fk.ref_columns) for fk in meeting.foreign_keys] == [
        (("building", "room_no"), ("building", "room_no"))]
    assert schema.table("room").unique == (("building", "room_no"),)
    build_database(schema, tmp_path, seed=3)
    path = database_path(tmp_path, "cyclic_synth")
    assert_keys_hold(path, schema)
    con = sqlite3.connect(path)
    managers = con.execute("SELECT emp_id, manager_id FROM emp ORDER BY rowid").fetchall()
    con.close()
    assert managers[0][1] is None  # the hierarchy's root
    assert any(m is not None for _, m in managers)
    assert all(m is None or m < e for e, m in managers)  # each references an earlier employee: no loops


def test_a_self_reference_that_must_be_unique_forms_a_chain(tmp_path: Path) -> None:
    """node.next_id references node and is itself referenced (so UNIQUE): each node points at another one."""
    entry = spider_entry(
        "chain_synth",
        {"node": [("node_id", "number"), ("label", "text"), ("next_id", "number")],
         "link": [("link_id", "number"), ("node_next", "number")]},
        pks=[("node", "node_id"), ("link", "link_id")],
        fks=[(("node", "next_id"), ("node", "node_id")), (("link", "node_next"), ("node", "next_id"))],
    )
    schema = schema_from_spider(entry)
    assert schema.table("node").unique == (("next_id",),)
    build_database(schema, tmp_path, seed=1)
    assert_keys_hold(database_path(tmp_path, "chain_synth"), schema)


def test_a_listed_key_column_of_a_junction_table_stands_for_the_composite_key(tmp_path: Path) -> None:
    """tables.json lists only the first column of singer_in_concert's (concert_ID, Singer_ID) key."""
    entry = spider_entry(
        "junction_synth",
        {"singer": [("Singer_ID", "number"), ("Name", "text")],
         "concert": [("concert_ID", "number"), ("concert_Name", "text")],
         "singer_in_concert": [("concert_ID", "number"), ("Singer_ID", "text")]},
        pks=[("singer", "Singer_ID"), ("concert", "concert_ID"), ("singer_in_concert", "concert_ID")],
        fks=[(("singer_in_concert", "concert_ID"), ("concert", "concert_ID")),
             (("singer_in_concert", "Singer_ID"), ("singer", "Singer_ID"))],
    )
    schema = schema_from_spider(entry)
    junction = schema.table("singer_in_concert")
    assert junction.primary_key == ("concert_ID", "Singer_ID")
    assert junction.column("Singer_ID").sql_type == "INTEGER"  # takes the referenced column's type
    build_database(schema, tmp_path, seed=0, rows=30)
    path = database_path(tmp_path, "junction_synth")
    assert_keys_hold(path, schema)
    con = sqlite3.connect(path)
    most = con.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM singer_in_concert GROUP BY concert_ID)")
    assert most.fetchone()[0] > 1  # a concert has several singers
    con.close()


@pytest.mark.parametrize(("table", "column", "coarse", "kind"), [
    ("people", "Name", "text", "free"), ("singer", "Age", "number", "age"), ("film", "Year", "time", "year"),
    ("customers", "email_address", "text", "email"), ("staff", "date_of_birth", "time", "birth_date"),
    ("orders", "order_status_code", "text", "category"), ("products", "product_price", "number", "price"),
    ("player", "Height", "number", "height"), ("people", "first_name", "text", "first_name"),
    ("people", "lname", "text", "last_name"), ("city", "Population", "number", "population"),
    ("staff", "gender", "text", "gender"), ("addresses", "zip_postcode", "text", "zip"),
    ("t", "is_male", "others", "bool"), ("t", "available_yn", "others", "yn"), ("team", "Rank", "text", "text_rank"),
    ("customers", "customer_phone", "text", "phone"), ("airports", "Country", "text", "country"),
    ("player", "player_id", "text", "code"), ("t", "payment_method_code", "text", "category"),
])
def test_column_kinds_from_names(table: str, column: str, coarse: str, kind: str) -> None:
    assert infer_kind(table, column, coarse) == kind


def test_a_missing_tables_json_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="tables.json not found"):
        load_schemas(tmp_path / "nope.json")
    result = CliRunner().invoke(app, ["synth", "databases", str(tmp_path / "out"), "--tables-json",
                                      str(tmp_path / "nope.json"), "--no-model"])
    assert result.exit_code == 2


def test_the_command_line(spider_dir, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["synth", "databases", str(tmp_path / "out"), "--tables-json", str(spider_dir / "tables.json"),
            "--no-model", "--only", "musical", "--only", "wine_1", "--rows", "20", "--no-progress"]
    first = runner.invoke(app, [*args, "--format", "json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert data["built"] == ["musical", "wine_1"] and data["foreign_key_violations"] == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "2 already there" in again.output
    refused = runner.invoke(app, [*args[:5], "--no-model", "--only", "pets_1"])
    assert refused.exit_code == 2 and "evaluation" in refused.output
    both = runner.invoke(app, [*args[:5], "--no-model", "--model", "x"])
    assert both.exit_code == 2


# --- vocabularies ---------------------------------------------------------------------------------------------
COLUMNS = ["Name", "Country", "Status"]


@pytest.mark.parametrize("reply", [
    '{"Name": ["Ava", "Ben", "Cy"], "Country": ["Peru", "Chad", "Fiji"], "Status": ["open", "shut", "new"]}',
    'Sure! Here are the values:\n```json\n{"name": ["Ava", "Ben", "Cy"], "COUNTRY": ["Peru", "Chad", "Fiji"],'
    ' "status": ["open", "shut", "new"]}\n```\nLet me know if you need more.',
    '[{"Name": "Ava", "Country": "Peru", "Status": "open"}, {"Name": "Ben", "Country": "Chad", "Status": "shut"},'
    ' {"Name": "Cy", "Country": "Fiji", "Status": "new"}]',
    "{'Name': ['Ava', 'Ben', 'Cy'], 'Country': ['Peru', 'Chad', 'Fiji'], 'Status': ['open', 'shut', 'new']}",
    '{"columns": {"Name": ["Ava", "Ben", "Cy"], "Country": ["Peru", "Chad", "Fiji"], '
    '"Status": {"values": ["open", "shut", "new"]}}}',
])
def test_replies_in_many_shapes_parse_to_the_same_vocabulary(reply: str) -> None:
    assert parse_vocabulary(reply, COLUMNS) == {"Name": ["Ava", "Ben", "Cy"], "Country": ["Peru", "Chad", "Fiji"],
                                                "Status": ["open", "shut", "new"]}


def test_a_reply_cut_off_by_the_token_limit_keeps_what_it_said() -> None:
    reply = '```json\n{\n  "Name": ["Ava", "Ben", "Cy"],\n  "Country": ["Peru", "Chad", "Fi'
    assert parse_vocabulary(reply, COLUMNS) == {"Name": ["Ava", "Ben", "Cy"], "Country": ["Peru", "Chad"]}


def test_junk_is_dropped() -> None:
    values = ["N/A", "...", "Value 3", "Name", "name1", "  Chateau   Margaux ", "chateau margaux", "x" * 70, None,
              True, ["nested"], {"a": 1}, "<name>", "Opus One", 1987]
    assert clean_values(values, "name") == ["Chateau Margaux", "Opus One", "1987"]
    assert clean_values([f"Account {i}" for i in range(1, 9)] + ["Savings"], "account_name") == ["Savings"]
    long = "A sturdy oak table with a hand-rubbed finish, seats six, made in Vermont by a family workshop."
    assert clean_values([long], "product_description") == [long] and clean_values([long], "name") == []
    assert parse_vocabulary("I cannot help with that.", COLUMNS) == {}
    assert parse_vocabulary('{"Name": "Ava, Ben, Cy"}', COLUMNS) == {"Name": ["Ava", "Ben", "Cy"]}
    # A model looping inside a value, and values that only name the table's columns.
    assert clean_values(["History of Science of Science", "Art History", "Physics"], "title") == ["Art History",
                                                                                                "Physics"]
    reply = '{"name": ["Airport", "City", "IATA", "Heathrow", "Changi", "Schiphol"]}'
    assert parse_vocabulary(reply, ["name"], avoid=["airport", "City", "IATA"]) == {
        "name": ["Heathrow", "Changi", "Schiphol"]}


def test_a_column_the_model_fails_on_falls_back_to_programmatic_values(tmp_path: Path) -> None:
    request = VocabularyRequest("shop", "product", (("Name", 5), ("Color", 4)), context=(("id", "number"),))
    llm = ScriptedLLM(['{"Name": ["Anvil", "Bellows", "Chisel", "Drill", "Easel"], "Color": ["Red", "Red", "..."]}'])
    stats = VocabularyStats()
    values = propose_vocabulary(llm, request, VocabularyCache(tmp_path / "w.jsonl"), stats)
    assert values == {"Name": ["Anvil", "Bellows", "Chisel", "Drill", "Easel"]}
    assert stats.failures == ["shop.product.Color"] and stats.model_calls == 1
    prompt = llm.requests[0]["messages"][1]["content"]
    assert '"product"' in prompt and "Name" in prompt and "Color" in prompt and "id" in prompt
    assert llm.requests[0]["temperature"] == 0.0


def test_model_vocabularies_fill_their_columns(schemas, tmp_path: Path) -> None:
    schema = schemas["musical"]
    requests = vocabulary_requests(schema, values_per_column=10)
    assert [r.table for r in requests] == ["musical", "actor"]
    names = ["Cats", "Evita", "Wicked", "Rent", "Chicago", "Hair", "Annie", "Grease", "Matilda", "Hamilton"]
    replies = {
        "musical": {"Name": names, "Award": ["Tony Award", "Drama Desk Award", "Olivier Award"],
                    "Category": ["Best Musical", "Best Choreography", "Best Book"],
                    "Nominee": ["...", "N/A", "Nominee 1"], "Result": ["Won", "Nominated", "Withdrawn"]},
        "actor": {"Name": ["Ray Bolger", "Idina Menzel", "Ben Platt", "Audra McDonald"],
                  "Character": ["Elphaba", "Glinda", "Evan Hansen", "Roxie Hart"]},
    }
    llm = ScriptedLLM([json.dumps(replies[r.table]) for r in requests])
    summary = synthesize_databases([schema], tmp_path, llm=llm, seed=0)
    assert summary.model_calls == 2 and llm.remaining == 0
    con = sqlite3.connect(database_path(tmp_path, "musical"))
    musicals = {r[0] for r in con.execute("SELECT Name FROM musical")}
    results = {r[0] for r in con.execute("SELECT Result FROM musical")}
    con.close()
    assert musicals == set(names)  # every value drawn before any repeats
    assert results <= {"Won", "Nominated", "Withdrawn"}
    entry = json.loads((tmp_path / MANIFEST_NAME).read_text())["databases"][0]
    columns = {t["name"]: t["columns"] for t in entry["tables"]}
    assert columns["musical"]["Name"]["source"] == "model" and columns["musical"]["Year"]["source"] == "programmatic"
    assert columns["actor"]["Musical_ID"]["source"] == "foreign key"
    assert columns["musical"]["Nominee"]["source"] == "programmatic"
    assert entry["failed_columns"] == ["musical.musical.Nominee"]  # nothing usable: programmatic values
    assert entry["vocabulary_from"] == "scripted"


def test_wide_tables_are_asked_in_chunks() -> None:
    request = VocabularyRequest("d", "t", tuple((f"c{i}", 5) for i in range(11)))
    llm = ScriptedLLM(["{}", "{}"])
    propose_vocabulary(llm, request)
    assert len(llm.requests) == 2
    assert "c7" in llm.requests[0]["messages"][1]["content"] and "c8" not in llm.requests[0]["messages"][1]["content"]
    assert "c10" in build_messages(request)[1]["content"]


# --- resuming ---------------------------------------------------------------------------------------------------
def scripted_replies(schema: SchemaSpec) -> list[str]:
    """One good reply per vocabulary request of `schema` (tables of at most 8 text columns)."""
    return [json.dumps({name: [f"{name[:3]}{chr(97 + i)}{chr(98 + i)}" for i in range(8)]
                        for name, _ in request.columns}) for request in vocabulary_requests(schema)]


def test_a_run_started_again_asks_the_model_nothing_twice(schemas, tmp_path: Path) -> None:
    chosen = [schemas["musical"], schemas["wine_1"]]
    first = synthesize_databases(chosen, tmp_path, llm=ScriptedLLM(
        [r for s in chosen for r in scripted_replies(s)]), seed=0)
    assert first.built == ["musical", "wine_1"] and first.model_calls > 0
    digest = sha256(database_path(tmp_path, "wine_1"))
    again = synthesize_databases(chosen, tmp_path, llm=ScriptedLLM(), seed=0)  # no replies queued
    assert again.reused == ["musical", "wine_1"] and again.built == []
    # A lost database is rebuilt from the work file, byte for byte, without the model.
    database_path(tmp_path, "wine_1").unlink()
    rebuilt = synthesize_databases(chosen, tmp_path, llm=ScriptedLLM(), seed=0)
    assert rebuilt.built == ["wine_1"] and rebuilt.model_calls == 0 and rebuilt.cached_replies > 0
    assert sha256(database_path(tmp_path, "wine_1")) == digest
    # Another seed rebuilds the rows, still without the model.
    other = synthesize_databases(chosen, tmp_path, llm=ScriptedLLM(), seed=5)
    assert other.built == ["musical", "wine_1"] and sha256(database_path(tmp_path, "wine_1")) != digest


def test_a_torn_line_in_the_work_file_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / WORK_FILE_NAME
    cache = VocabularyCache(path)
    cache.put("k1", {"Name": ["Ava", "Ben"]})
    with path.open("a") as fh:
        fh.write('{"key": "k2", "values": {"Name": ["Cy"')  # SIGKILL mid-write
    reread = VocabularyCache(path)
    assert reread.get("k1") == {"Name": ["Ava", "Ben"]} and reread.get("k2") is None
    reread.put("k3", {"Name": ["Dee"]})
    assert VocabularyCache(path).get("k3") == {"Name": ["Dee"]} and len(VocabularyCache(path)) == 2


SLOW_RUN = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from sqlwright.llm.base import Completion
    from sqlwright.synth.databases import load_schemas, synthesize_databases

    class SlowLLM:  # answers after a pause, logging each request
        name = "slow"
        supports_n = False
        supports_logprobs = False

        def complete(self, messages, *, n=1, temperature=0.0, max_tokens=512, stop=None, seed=None):
            with open(sys.argv[3], "a") as fh:
                fh.write(messages[1]["content"].splitlines()[0] + "\\n")
            time.sleep(0.3)
            cols = [line[2:].split(":")[0] for line in messages[1]["content"].splitlines() if line.startswith("- ")]
            return [Completion(json.dumps({c: [f"{c}-{w}" for w in ("alpha", "beta", "gamma", "delta")]
                                           for c in cols}))]

        def count_tokens(self, text):
            return len(text) // 4

    ids = sys.argv[2].split(",")
    schemas = [s for s in load_schemas(Path(sys.argv[1])) if s.db_id in ids]
    synthesize_databases(sorted(schemas, key=lambda s: ids.index(s.db_id)), Path(sys.argv[4]), llm=SlowLLM())
""")


def test_a_run_killed_with_sigkill_resumes_without_asking_again(schemas, spider_dir, tmp_path: Path) -> None:
    ids = ["musical", "wine_1", "cre_Doc_Tracking_DB", "college_2"]
    total = sum(-(-len(r.columns) // 8) for db_id in ids for r in vocabulary_requests(schemas[db_id]))
    log, out = tmp_path / "requests.log", tmp_path / "out"
    script = tmp_path / "run.py"
    script.write_text(SLOW_RUN)
    command = [sys.executable, str(script), str(spider_dir / "tables.json"), ",".join(ids), str(log), str(out)]
    proc = subprocess.Popen(command)
    manifest = out / MANIFEST_NAME
    deadline = time.monotonic() + 120
    try:  # kill it once a database is done and the model is being asked about the next ones
        while time.monotonic() < deadline:
            done = json.loads(manifest.read_text())["databases"] if manifest.exists() else []
            if done and log.exists() and len(log.read_text().splitlines()) >= 4:
                break
            assert proc.poll() is None, "the run ended before it was killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    asked_before = log.read_text().splitlines()
    built_before = {e["db_id"]: e["sha256"] for e in json.loads(manifest.read_text())["databases"]}
    assert built_before and len(built_before) < len(ids) and len(asked_before) < total
    stamps = {db_id: database_path(out, db_id).stat().st_mtime_ns for db_id in built_before}
    subprocess.run(command, check=True, timeout=300)
    asked_after = log.read_text().splitlines()[len(asked_before):]
    # Only the request in flight at the kill may be asked again; every answered one comes from the work file.
    assert len(asked_before) + len(asked_after) <= total + 1
    assert not set(asked_after) & set(asked_before[:-1])
    assert len(VocabularyCache(out / WORK_FILE_NAME)) == total
    entries = {e["db_id"]: e for e in json.loads(manifest.read_text())["databases"]}
    assert sorted(entries) == sorted(ids) and all(e["complete"] for e in entries.values())
    for db_id, digest in built_before.items():  # kept, not rebuilt
        assert entries[db_id]["sha256"] == digest
        assert database_path(out, db_id).stat().st_mtime_ns == stamps[db_id]
    for db_id in ids:
        con = sqlite3.connect(database_path(out, db_id))
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        con.close()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


# --- the real model -------------------------------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.slow
def test_the_real_model_proposes_vocabularies(real_llm, schemas, tmp_path: Path) -> None:
    """One small schema (two tables, two prompts) with the real model's vocabularies."""
    schema = schemas["musical"]
    summary = synthesize_databases([schema], tmp_path, llm=real_llm, seed=0, values_per_column=10)
    assert summary.built == ["musical"] and summary.model_calls == 2
    assert_keys_hold(database_path(tmp_path, "musical"), schema)
    entry = json.loads((tmp_path / MANIFEST_NAME).read_text())["databases"][0]
    from_model = [(t["name"], c) for t in entry["tables"] for c, info in t["columns"].items()
                  if info["source"] == "model"]
    assert from_model, entry["failed_columns"]
    table, column = from_model[0]
    con = sqlite3.connect(database_path(tmp_path, "musical"))
    values = {r[0] for r in con.execute(f'SELECT "{column}" FROM "{table}"')}
    con.close()
    cache = VocabularyCache(tmp_path / WORK_FILE_NAME)
    assert len(cache) == 2
    proposed = {v for line in (tmp_path / WORK_FILE_NAME).read_text().splitlines() if line.strip()
                for v in json.loads(line)["values"].get(column, [])}
    assert values <= proposed | {None}
    again = synthesize_databases([schema], tmp_path, llm=real_llm, seed=0, values_per_column=10)
    assert again.reused == ["musical"] and again.model_calls == 0
