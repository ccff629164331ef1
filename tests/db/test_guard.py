"""The guard, table-driven per dialect: hostile statements refused with the right reason, legitimate
queries accepted and trimmed, and every gold query of Spider dev and SQL-Eval (PostgreSQL) accepted."""

from __future__ import annotations

import csv

import pytest
from hostile_sql import HOSTILE, hostile_for

from sqlwright.db import check_sql, split_statements
from sqlwright.errors import QueryRefused, UnsupportedDatabase

DIALECTS = ["sqlite", "postgres", "mysql", "duckdb"]

HOSTILE_CASES = [
    pytest.param(dialect, sql, words, id=f"{dialect}-{i}")
    for i, (sql, dialects, words) in enumerate(HOSTILE)
    for dialect in dialects
]


def test_corpus_is_large_and_covers_every_dialect():
    assert len(HOSTILE) >= 60
    for dialect in DIALECTS:
        assert len(hostile_for(dialect)) >= 40, dialect


@pytest.mark.parametrize(("dialect", "sql", "words"), HOSTILE_CASES)
def test_hostile_statement_is_refused_with_its_reason(dialect, sql, words):
    with pytest.raises(QueryRefused) as info:
        check_sql(sql, dialect)
    message = str(info.value)
    assert message.startswith("Refused: ")
    assert "\n" not in message  # one line, whatever the parser said
    assert words.lower() in message.lower()


LEGIT = [
    ("SELECT 1", "SELECT 1"),
    ("SELECT * FROM singer;", "SELECT * FROM singer"),
    ("  select name from singer ;;  ", "select name from singer"),
    ("SELECT name FROM singer -- trailing comment", "SELECT name FROM singer"),
    ("SELECT name FROM singer; -- done", "SELECT name FROM singer"),
    ("/* lead */ SELECT 'a;b' AS x", "/* lead */ SELECT 'a;b' AS x"),
    ("SELECT count(*) FROM singer WHERE name LIKE '%Sharp%'", None),
    ("WITH t AS (SELECT age FROM singer) SELECT max(age) FROM t", None),
    ("SELECT name FROM singer UNION SELECT concert_name FROM concert", None),
    ("SELECT name FROM singer INTERSECT SELECT name FROM singer", None),
    ("SELECT name FROM singer EXCEPT SELECT name FROM singer WHERE age > 40", None),
    ("(SELECT 1) UNION ALL (SELECT 2)", None),
    ("SELECT s.name, c.concert_name FROM singer s JOIN singer_in_concert sc ON s.singer_id = sc.singer_id "
     "JOIN concert c ON c.concert_id = sc.concert_id ORDER BY 1 LIMIT 3", None),
    ("SELECT country, avg(age) FROM singer GROUP BY country HAVING count(*) > 1", None),
    ("SELECT CASE WHEN age > 40 THEN 'old' ELSE 'young' END FROM singer", None),
    ("SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)", None),
    ("SELECT 'DROP TABLE singer; DELETE FROM x' AS harmless_text", None),
    ("SELECT \"update\", \"delete\" FROM (SELECT 1 AS \"update\", 2 AS \"delete\") t", None),
    ("SELECT row_number() OVER (PARTITION BY country ORDER BY age) FROM singer", None),
    ("SELECT replace(name, 'a', 'b'), lower(name), substr(name, 1, 2) FROM singer", None),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("sql", "trimmed"), LEGIT)
def test_legitimate_queries_pass_and_are_trimmed(dialect, sql, trimmed):
    assert check_sql(sql, dialect) == (trimmed if trimmed is not None else sql)


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("sqlite", "SELECT * FROM pragma_table_info('singer')"),
        ("sqlite", "SELECT name FROM sqlite_master WHERE type = 'table'"),
        ("postgres", "SELECT relname FROM pg_catalog.pg_class LIMIT 1"),
        ("postgres", "SELECT current_setting('statement_timeout')"),
        ("postgres", "SELECT date_trunc('month', now()) - interval '1 day'"),
        ("postgres", "SELECT x::text FROM (VALUES (1), (2)) AS v(x)"),
        ("postgres", "VALUES (1, 'a'), (2, 'b')"),
        ("postgres", "SELECT name FROM singer WHERE name ILIKE '%joe%' ORDER BY age DESC NULLS LAST"),
        ("mysql", "SELECT `name` FROM `singer` WHERE `age` > 30"),
        ("mysql", "SELECT DATE_FORMAT(NOW(), '%Y-%m') AS ym"),
        ("duckdb", "SELECT * FROM range(10)"),
        ("duckdb", "SELECT list_value(1, 2)"),
        ("duckdb", "SELECT * FROM main.singer"),
    ],
)
def test_dialect_specific_reads_pass(dialect, sql):
    assert check_sql(sql, dialect) == sql


def test_unknown_dialect_is_a_clear_error():
    with pytest.raises(UnsupportedDatabase, match="Did you mean 'postgres'"):
        check_sql("SELECT 1", "postgress")


def test_parse_error_is_one_line_with_position():
    with pytest.raises(QueryRefused) as info:
        check_sql("SELECT * FROM singer WHERE (age > ", "postgres")
    assert "could not parse" in str(info.value) and "\n" not in str(info.value)


def test_split_statements_respects_strings_and_comments():
    text = "SELECT 'a;b' AS x; SELECT 2 /* ; */;\n-- c;\nSELECT 3"
    assert split_statements(text, "postgres") == ["SELECT 'a;b' AS x", "SELECT 2", "SELECT 3"]


# --- acceptance: the gold queries of the benchmarks must pass ------------------------------------------
def test_every_spider_dev_gold_query_passes(data_dir):
    path = data_dir / "spider" / "dev_gold.sql"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    golds = [line.rsplit("\t", 1)[0] for line in path.read_text().splitlines() if line.strip()]
    assert len(golds) == 1034
    refused = []
    for sql in golds:
        try:
            check_sql(sql, "sqlite")
        except QueryRefused as exc:
            refused.append((sql, str(exc)))
    assert refused == []


def test_every_sqleval_postgres_gold_query_passes(data_dir):
    paths = sorted((data_dir / "sqleval" / "questions").glob("*_postgres.csv"))
    if not paths:
        pytest.skip("SQL-Eval questions not found")
    refused = []
    count = 0
    for path in paths:
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                # A gold may hold several acceptable alternatives separated by ';'.
                for sql in split_statements(row["query"], "postgres"):
                    count += 1
                    try:
                        check_sql(sql, "postgres")
                    except QueryRefused as exc:
                        refused.append((sql, str(exc)))
    assert count >= 250
    assert refused == []
