"""Write the ISO 3166 country records from pycountry as a JSON-lines replay corpus.

Each line is a JSON array holding one positional argument, the record:

    python examples/replay_corpus.py countries.jsonl
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pycountry

FIELDS = ("alpha_2", "alpha_3", "name", "numeric", "official_name", "common_name")


def country_records() -> list[dict[str, Any]]:
    """Return one dict per ISO 3166-1 country, with the fields the country has."""
    records = []
    for country in pycountry.countries:
        record = {name: getattr(country, name) for name in FIELDS if hasattr(country, name)}
        records.append(record)
    return records


def write_corpus(path: str) -> int:
    """Write the records to ``path``, one ``[record]`` line each, and return how many."""
    records = country_records()
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps([record], ensure_ascii=False) + "\n")
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the JSON-lines file to write")
    path = parser.parse_args().path
    count = write_corpus(path)
    print(f"wrote {count} records to {path}")


if __name__ == "__main__":
    main()
