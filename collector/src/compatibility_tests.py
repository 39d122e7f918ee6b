"""Runs Plumb's schema, inserts and queries on current ClickHouse, embedded through chDB.

Called by current_clickhouse.rs with a fixture file (JSON) that holds the exact SQL the collector
sends (migrations, every query of the query API with its values bound, the retention query), a
file of span rows and one of metric rows encoded as RowBinary by the collector's own encoders, and
rows to insert. Prints what
came back as JSON on stdout.
"""

import json
import sys
import tempfile

from chdb import session


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        fixture = json.load(f)
    with tempfile.TemporaryDirectory() as path:
        db = session.Session(path)

        def rows(sql: str) -> list:
            text = str(db.query(sql, "JSONEachRow"))
            return [json.loads(line) for line in text.splitlines() if line.strip()]

        for statement in fixture["schema"]:
            db.query(statement)
        for row in fixture["latency_rows"]:
            db.query(
                "INSERT INTO latency_minute VALUES ({minute}, '{service}', '{operation}', '{kind}', "
                "{requests}, {errors}, {sum_us}, {buckets}, {counts})".format(**row)
            )
        db.query(
            f"INSERT INTO spans ({fixture['span_columns']}) "
            f"FROM INFILE '{fixture['span_file']}' FORMAT RowBinary"
        )
        db.query(
            f"INSERT INTO metrics ({fixture['metric_columns']}) "
            f"FROM INFILE '{fixture['metric_file']}' FORMAT RowBinary"
        )
        for statement in fixture["inserts"]:
            db.query(statement)
        result = {
            "version": rows("SELECT version() AS v")[0]["v"],
            "ranking": rows(fixture["ranking_sql"]),
            "hour_requests": rows("SELECT sum(hour_requests) AS n FROM latency_hour")[0]["n"],
            "spans": rows(
                "SELECT count() AS n, any(hex(trace_id)) AS trace, sum(length(attributes.key)) AS attributes, "
                "2 * countIf(bitAnd(attributes_folded, 1) != 0) + countIf(bitAnd(attributes_folded, 2) != 0) AS folded "
                "FROM spans"
            )[0],
            "expired": rows(fixture["retention_sql"]),
            "answers": {name: rows(sql) for name, sql in fixture["queries"].items()},
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
