"""Write a shadowfn JSON-lines log from a codec migration on ISO 3166 data, then report on it.

    python examples/report_demo.py /tmp/codec.log
    python -m shadowfn report /tmp/codec.log --max-divergence-rate 0.01 --min-samples 200

``encode`` turns a country code into a record with its subdivisions. The
candidate ``encode_v2`` prefers a country's common name ("Bolivia" where the
primary returns "Bolivia, Plurinational State of") and drops the parenthesized part
of subdivision names, so some records really differ. ``decode`` maps a numeric
code back to the alpha-2 code; its candidate rejects codes with a leading zero.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import pycountry
import structlog

import shadowfn
from shadowfn import shadow


def _record(alpha_2: str, *, common_names: bool, short_subdivisions: bool) -> dict[str, Any]:
    country = pycountry.countries.get(alpha_2=alpha_2)
    name = getattr(country, "common_name", country.name) if common_names else country.name
    subdivisions = sorted(pycountry.subdivisions.get(country_code=alpha_2) or [], key=lambda s: s.code)
    return {
        "code": country.alpha_2,
        "alpha_3": country.alpha_3,
        "name": name,
        "numeric": country.numeric,
        "subdivisions": [
            {
                "code": s.code,
                "name": s.name.split(" (")[0] if short_subdivisions else s.name,
                "type": s.type,
            }
            for s in subdivisions
        ],
    }


def encode_v2(alpha_2: str) -> dict[str, Any]:
    return _record(alpha_2, common_names=True, short_subdivisions=True)


@shadow(encode_v2, rate=100, timeout=5.0, name="codec.encode")
def encode(alpha_2: str) -> dict[str, Any]:
    return _record(alpha_2, common_names=False, short_subdivisions=False)


def decode_v2(numeric: str) -> str:
    if numeric.startswith("0"):
        raise KeyError(numeric)
    return str(pycountry.countries.get(numeric=numeric).alpha_2)


@shadow(decode_v2, rate=100, timeout=5.0, name="codec.decode")
def decode(numeric: str) -> str:
    return str(pycountry.countries.get(numeric=numeric).alpha_2)


def write_log(path: str, rounds: int = 6, pause: float = 1.0) -> None:
    """Run every ISO 3166 country through both functions, logging JSON lines to ``path``.

    The countries are split into ``rounds`` interleaved slices with ``pause``
    seconds between them, so the log spans several seconds of divergence rates.
    """
    previous = structlog.get_config()
    countries = list(pycountry.countries)
    with open(path, "w", encoding="utf-8") as sink:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            logger_factory=structlog.WriteLoggerFactory(file=sink),
            cache_logger_on_first_use=False,
        )
        try:
            for round_number in range(rounds):
                if round_number:
                    time.sleep(pause)
                for country in countries[round_number::rounds]:
                    encode(country.alpha_2)
                    decode(country.numeric)
                    # Waiting here keeps pending candidates under the bound, so none are shed.
                    shadowfn.drain(timeout=30)
        finally:
            structlog.configure(**previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "path", nargs="?", default="codec.log", help="the JSON-lines log to write (default: codec.log)"
    )
    write_log(parser.parse_args().path)


if __name__ == "__main__":
    main()
