"""Bytes per span of the same rows on current ClickHouse (chDB), without and with the column codecs.

Called by bench-bytes.sh with the CREATE TABLE statement of `spans` as 18.16 shows it, a file of
its rows in Native format, and the collector's codec migration (collector/src/store/codecs.sql).
Prints bytes per span for each variant and its six largest columns.
"""

import sys
import tempfile

from chdb import session


def statements(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        text = "".join(line for line in f if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def bytes_per_span(create: str, rows: str, alters: list) -> tuple:
    with tempfile.TemporaryDirectory() as path:
        db = session.Session(path)
        db.query(create)
        for alter in alters:
            db.query(alter)
        db.query(f"INSERT INTO spans FROM INFILE '{rows}' FORMAT Native")
        db.query("OPTIMIZE TABLE spans FINAL")
        line = str(
            db.query(
                "SELECT sum(rows), sum(bytes_on_disk) FROM system.parts "
                "WHERE database = currentDatabase() AND table = 'spans' AND active",
                "TSV",
            )
        ).split()
        columns = str(
            db.query(
                "SELECT name, round(data_compressed_bytes / {0}, 1) FROM system.columns "
                "WHERE database = currentDatabase() AND table = 'spans' "
                "ORDER BY data_compressed_bytes DESC LIMIT 6".format(line[0]),
                "TSV",
            )
        )
        db.close()
        return int(line[0]), int(line[1]), columns


def main() -> None:
    create_file, rows, codecs = sys.argv[1:4]
    with open(create_file, encoding="utf-8") as f:
        create = f.read()
    # Keep only the spans table's own statement of the codec file.
    alters = [s for s in statements(codecs) if s.startswith("ALTER TABLE spans")]
    for name, these in [("LZ4 (the default)", []), ("codecs of migration 9", alters)]:
        count, size, columns = bytes_per_span(create, rows, these)
        print(f"    current ClickHouse, {name}: {size / count:.1f} bytes per span")
        for column in columns.splitlines():
            column_name, per_span = column.split("\t")
            print(f"        {column_name:<18} {per_span} bytes per span")


if __name__ == "__main__":
    main()
