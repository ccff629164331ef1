"""A corpus of hostile statements: each must be refused by the guard in every dialect it lists, and
running it through `Database.execute` must leave the database unchanged.

Each entry is (statement, dialects, words): `words` is a fragment the refusal message must contain
(case-insensitive), so that the reason given is the right one, not just any refusal.
"""

from __future__ import annotations

ALL = ("sqlite", "postgres", "mysql", "duckdb")
PG = ("postgres",)
MY = ("mysql",)
LITE = ("sqlite",)
DUCK = ("duckdb",)

HOSTILE: list[tuple[str, tuple[str, ...], str]] = [
    # --- DML ---------------------------------------------------------------------------------------
    ("INSERT INTO singer VALUES (9, 'Mallory', 'Nowhere', 66)", ALL, "INSERT"),
    ("INSERT INTO singer SELECT * FROM singer", ALL, "INSERT"),
    ("UPDATE singer SET age = 0", ALL, "UPDATE"),
    ("UPDATE singer SET name = 'x' WHERE singer_id IN (SELECT singer_id FROM singer)", ALL, "UPDATE"),
    ("DELETE FROM singer", ALL, "DELETE"),
    ("DELETE FROM singer WHERE 1 = 1", ALL, "DELETE"),
    ("REPLACE INTO singer VALUES (1, 'x', 'y', 1)", MY, "REPLACE"),
    ("INSERT OR REPLACE INTO singer VALUES (1, 'x', 'y', 1)", LITE, "INSERT"),
    ("MERGE INTO singer USING concert ON singer.singer_id = concert.concert_id WHEN MATCHED THEN DELETE", PG, "MERGE"),
    ("TRUNCATE TABLE singer", ALL, "TRUNCATE"),
    ("INSERT INTO singer VALUES (10, 'x', 'y', 1) ON CONFLICT DO NOTHING", PG + LITE, "INSERT"),
    # --- DDL ---------------------------------------------------------------------------------------
    ("DROP TABLE singer", ALL, "DROP"),
    ("DROP TABLE IF EXISTS singer_in_concert", ALL, "DROP"),
    ("CREATE TABLE evil (x INTEGER)", ALL, "CREATE"),
    ("CREATE TABLE evil AS SELECT * FROM singer", ALL, "CREATE"),
    ("CREATE VIEW v AS SELECT 1 AS x", ALL, "CREATE"),
    ("CREATE INDEX idx_evil ON singer (age)", ALL, "CREATE"),
    ("CREATE TEMP TABLE t AS SELECT 1 AS x", LITE + PG + DUCK, "CREATE"),
    ("ALTER TABLE singer ADD COLUMN evil INTEGER", ALL, "ALTER"),
    ("ALTER TABLE singer RENAME TO singers", LITE + PG + DUCK, "ALTER"),
    ("CREATE TRIGGER trg AFTER INSERT ON singer BEGIN DELETE FROM concert; END", LITE, ""),
    ("CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql", PG, "CREATE"),
    ("COMMENT ON TABLE singer IS 'pwned'", PG + DUCK, ""),
    ("GRANT ALL ON singer TO PUBLIC", PG + MY, "GRANT"),
    ("REVOKE SELECT ON singer FROM PUBLIC", PG, ""),
    # --- multi-statements and stacking ---------------------------------------------------------------
    ("SELECT 1; DROP TABLE singer", ALL, "statements"),
    ("SELECT * FROM singer; DELETE FROM singer;", ALL, "statements"),
    ("SELECT 1;\n-- innocent\nUPDATE singer SET age = age + 1", ALL, "statements"),
    ("SELECT 'a\\'; DELETE FROM singer; --'", PG + LITE, "statements"),
    ("SELECT 1 /* ; */ ; /* x */ INSERT INTO concert VALUES (9, 'x', 1)", ALL, "statements"),
    # --- data-modifying CTEs, SELECT INTO, locking reads ---------------------------------------------
    ("WITH gone AS (DELETE FROM singer RETURNING *) SELECT * FROM gone", PG, "DELETE"),
    ("WITH up AS (UPDATE singer SET age = 1 RETURNING *) SELECT count(*) FROM up", PG, "UPDATE"),
    ("WITH ins AS (INSERT INTO concert VALUES (7, 'x', 1) RETURNING *) SELECT * FROM ins", PG, "INSERT"),
    ("SELECT * INTO evil FROM singer", PG + DUCK, "INTO"),
    ("SELECT * FROM singer FOR UPDATE", PG + MY, "lock"),
    ("SELECT * FROM singer FOR SHARE", PG, "lock"),
    ("SELECT * FROM singer LOCK IN SHARE MODE", MY, "lock"),
    ("SELECT * FROM singer INTO OUTFILE '/tmp/sqlwright_pwned.txt'", MY, ""),
    ("SELECT * FROM singer INTO DUMPFILE '/tmp/sqlwright_pwned.bin'", MY, ""),
    ("SELECT name INTO @x FROM singer LIMIT 1", MY, ""),
    # --- PRAGMA, ATTACH, VACUUM, maintenance ------------------------------------------------------------
    ("PRAGMA query_only = OFF", LITE, "PRAGMA"),
    ("PRAGMA writable_schema = 1", LITE, "PRAGMA"),
    ("PRAGMA table_info(singer)", LITE, "PRAGMA"),
    ("pragma journal_mode = delete", LITE, "PRAGMA"),
    ("PRAGMA enable_profiling", DUCK, "PRAGMA"),
    ("ATTACH DATABASE '/tmp/sqlwright_evil.db' AS evil", LITE, "ATTACH"),
    ("ATTACH '/tmp/sqlwright_evil.duckdb' AS evil", DUCK, "ATTACH"),
    ("DETACH DATABASE main", LITE, "DETACH"),
    ("VACUUM", LITE + PG + DUCK, "VACUUM"),
    ("VACUUM INTO '/tmp/sqlwright_copy.db'", LITE, ""),
    ("REINDEX", LITE, ""),
    ("ANALYZE singer", LITE + PG, ""),
    # --- COPY, SET, CALL, transactions, prepared statements ---------------------------------------------
    ("COPY singer TO '/tmp/sqlwright_out.csv'", PG + DUCK, "COPY"),
    ("COPY singer FROM PROGRAM 'id'", PG, "COPY"),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/sqlwright_pwned'", PG, "COPY"),
    ("SET default_transaction_read_only = off", PG, "SET"),
    ("SET SESSION TRANSACTION READ WRITE", MY, "SET"),
    ("SET enable_external_access = true", DUCK, "SET"),
    ("SET statement_timeout = 0", PG, "SET"),
    ("CALL do_things()", PG + MY + DUCK, "CALL"),
    ("BEGIN", ALL, ""),
    ("COMMIT", ALL, ""),
    ("START TRANSACTION READ WRITE", MY + PG, ""),
    ("PREPARE p AS DELETE FROM singer", PG, ""),
    ("EXECUTE p", PG, ""),
    ("DO $$ BEGIN DELETE FROM singer; END $$", PG, ""),
    ("LOCK TABLE singer IN ACCESS EXCLUSIVE MODE", PG, ""),
    ("NOTIFY chan, 'x'", PG, ""),
    ("LISTEN chan", PG, ""),
    ("RESET ALL", PG, ""),
    ("DISCARD ALL", PG, ""),
    ("HANDLER singer OPEN", MY, ""),
    ("DO SLEEP(5)", MY, ""),
    ("LOAD DATA INFILE '/etc/passwd' INTO TABLE singer", MY, ""),
    ("KILL 1", MY, ""),
    ("FLUSH TABLES", MY, ""),
    ("USE mysql", MY, ""),
    ("INSTALL httpfs", DUCK, "INSTALL"),
    ("LOAD httpfs", DUCK, ""),
    ("EXPORT DATABASE '/tmp/sqlwright_export'", DUCK, ""),
    ("CHECKPOINT", DUCK + PG, ""),
    # --- file, server, session and sleep functions ------------------------------------------------------
    ("SELECT pg_read_file('/etc/passwd')", PG, "pg_read_file"),
    ("SELECT pg_catalog.pg_read_binary_file('/etc/passwd')", PG, "pg_read_binary_file"),
    ("SELECT * FROM pg_ls_dir('.')", PG, "pg_ls_dir"),
    ("SELECT lo_import('/etc/passwd')", PG, "lo_import"),
    ("SELECT lo_export(1, '/tmp/sqlwright_lo')", PG, "lo_export"),
    ("SELECT lo_from_bytea(0, 'x')", PG, "lo_from_bytea"),
    ("SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(x int)", PG, "dblink"),
    ("SELECT dblink_exec('DELETE FROM singer')", PG, "dblink"),
    ("SELECT pg_sleep(10)", PG, "pg_sleep"),
    ("SELECT pg_sleep_for('10 seconds')", PG, "pg_sleep"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", PG, "pg_terminate_backend"),
    ("SELECT pg_cancel_backend(1)", PG, "pg_cancel_backend"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", PG, "set_config"),
    ("SELECT nextval('counter')", PG + DUCK, "nextval"),
    ("SELECT setval('counter', 100)", PG, "setval"),
    ("SELECT txid_current()", PG, "txid_current"),
    ("SELECT query_to_xml('DELETE FROM singer RETURNING 1', true, true, '')", PG, "query_to_xml"),
    ("SELECT pg_advisory_lock(1)", PG, "pg_advisory_lock"),
    ("SELECT pg_reload_conf()", PG, "pg_reload_conf"),
    ("SELECT load_extension('/tmp/evil.so')", LITE, "load_extension"),
    ("SELECT readfile('/etc/passwd')", LITE, "readfile"),
    ("SELECT writefile('/tmp/sqlwright_pwned', 'x')", LITE, "writefile"),
    ("SELECT fts3_tokenizer('simple')", LITE, "fts3_tokenizer"),
    ("SELECT * FROM fsdir('/')", LITE, "fsdir"),
    ("SELECT SLEEP(10)", MY, "sleep"),
    ("SELECT BENCHMARK(100000000, MD5('x'))", MY, "benchmark"),
    ("SELECT LOAD_FILE('/etc/passwd')", MY, "load_file"),
    ("SELECT sys_exec('id')", MY, "sys_exec"),
    ("SELECT GET_LOCK('x', 10)", MY, "get_lock"),
    ("SELECT * FROM read_csv('/etc/passwd')", DUCK, "read_csv"),
    ("SELECT * FROM read_csv_auto('/tmp/x.csv')", DUCK, "read_csv"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", DUCK, "read_parquet"),
    ("SELECT * FROM read_json_auto('/tmp/x.json')", DUCK, "read_json"),
    ("SELECT * FROM read_text('/etc/passwd')", DUCK, "read_text"),
    ("SELECT * FROM glob('/*')", DUCK, "glob"),
    ("SELECT * FROM '/etc/passwd.csv'", DUCK, "file"),
    ("SELECT * FROM \"data.parquet\"", DUCK, "file"),
    ("SELECT * FROM query('DELETE FROM singer')", DUCK, "query"),
    ("SELECT getenv('HOME')", DUCK, "getenv"),
    # --- nested: the forbidden thing hides in a subquery, a CTE or a join -------------------------------
    ("SELECT * FROM singer WHERE age > (SELECT pg_sleep(5))::text::int", PG, "pg_sleep"),
    ("SELECT name FROM singer WHERE EXISTS (SELECT SLEEP(5))", MY, "sleep"),
    ("WITH f AS (SELECT readfile('/etc/passwd') AS x) SELECT * FROM f", LITE, "readfile"),
    ("SELECT 1 UNION SELECT pg_read_file('/etc/passwd')", PG, "pg_read_file"),
    ("SELECT * FROM singer JOIN read_csv('/etc/passwd') AS f ON true", DUCK, "read_csv"),
    # --- comment and case obfuscation -------------------------------------------------------------------
    ("/* harmless */ DELETE /* really */ FROM singer", ALL, "DELETE"),
    ("dElEtE fRoM singer", ALL, "DELETE"),
    ("-- a comment\nDROP TABLE singer", ALL, "DROP"),
    ("SELECT 1 -- ; DROP TABLE singer\n; DROP TABLE singer", ALL, "statements"),
    ("SeLeCt Pg_ReAd_FiLe('/etc/passwd')", PG, "pg_read_file"),
    ("SELECT/**/pg_sleep/**/(10)", PG, "pg_sleep"),
    ("SELECT \"pg_read_file\"('/etc/passwd')", PG, "pg_read_file"),
    ("SELECT 1 /*!50000 , SLEEP(5) */", MY, "executable comment"),
    ("SELECT 1 /*M! , SLEEP(5) */", MY, "executable comment"),
    ("SELECT /*!32302 1 FROM singer; DROP TABLE singer */ 1", MY, "executable comment"),
    ("sElEcT * FrOm singer InTo OuTfIlE '/tmp/sqlwright_pwned2.txt'", MY, ""),
    # --- text sqlglot skips but the server reads: the guard must see all that the database runs ----------
    # MySQL starts a `--` comment only before an ASCII space or control character; sqlglot also before U+00A0.
    ("SELECT 1 AS a --\xa0, LOAD_FILE('/etc/hostname') AS h\nFROM (SELECT 1 AS `\xa0`) t", MY,
     "'--' followed by"),
    # sqlglot skips non-ASCII spaces; the servers read them as part of a name, here glued to a `$$` quote.
    ("SELECT 'a' ||\xa0$$, pg_read_file('/etc/hostname') AS h, 1 AS b\xa0$$ "
     "FROM (SELECT 'x' AS \"\xa0$$\") t", PG, "U+00A0"),
    ("SELECT 'a' ||\u2028$$, getenv('HOME') AS h, 1 AS b\u2028$$ FROM (SELECT 'x' AS \"\u2028$$\") t",
     DUCK, "U+2028"),
    ("SELECT\u3000name FROM singer", ALL, "U+3000"),
    # sqlglot skips {# ... #} (template comments); MySQL reads `{x expr}` (an ODBC escape) and a # comment.
    ("SELECT {#\n x LOAD_FILE('/etc/hostname')} AS h, -- #}\n 1 AS a", MY, "starts no comment"),
    ("SELECT 1 AS a {# , 2 #}", ALL, "starts no comment"),
    # DuckDB quotes names with backticks; sqlglot's DuckDB does not, and read `glob` as the GLOB operator.
    ("SELECT `glob`('/*')", DUCK, "unexpected '`'"),
    # --- text the guard cannot check: too deep for the parser, NUL, lone surrogates -----------------------
    ("SELECT " + "(" * 200 + "1" + ")" * 200, ALL, "too deeply nested"),
    ("SELECT 1\x00; DROP TABLE singer", ALL, "NUL"),
    ("SELECT '\ud800' AS x", ALL, "surrogate"),
    # --- not SQL, or nothing ----------------------------------------------------------------------------
    ("", ALL, "empty"),
    ("   ;  ", ALL, ""),
    ("-- only a comment", ALL, ""),
    ("SELEC * FROM singer", ALL, "parse"),
    ("SELECT * FROM singer WHERE (", ALL, "parse"),
    ("SHOW TABLES", MY + DUCK, ""),
    ("DESCRIBE singer", MY + DUCK, ""),
    ("EXPLAIN ANALYZE DELETE FROM singer", PG, ""),
]


def hostile_for(dialect: str) -> list[tuple[str, str]]:
    """The (statement, expected message fragment) pairs that apply to `dialect`."""
    return [(sql, words) for sql, dialects, words in HOSTILE if dialect in dialects]
