"""Runs the Grafana dashboards' expanded SQL on current ClickHouse, embedded through chDB.

Called by dashboards.rs with a fixture file (JSON): the tables of a test database as ClickHouse
18.16 describes them, each with a file of its rows in RowBinary, and the statements to run by
name. Prints, by name, either {"result": <JSONCompact answer>} or {"error": "..."} as JSON.
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
        db.query(f"CREATE DATABASE IF NOT EXISTS {fixture['database']}")
        for table in fixture["tables"]:
            db.query(table["create"])
            db.query(f"INSERT INTO {table['name']} FROM INFILE '{table['file']}' FORMAT RowBinary")
        answers = {}
        for name, sql in fixture["queries"].items():
            try:
                answers[name] = {"result": json.loads(str(db.query(sql, "JSONCompact")))}
            except Exception as e:  # chDB raises its own error types; each is one answer
                answers[name] = {"error": str(e)}
        print(json.dumps(answers))


if __name__ == "__main__":
    main()
