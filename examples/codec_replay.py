"""A JSON codec under migration from the standard library to orjson, for ``shadowfn replay``.

Both primaries write compact JSON with sorted keys, as orjson does with
``OPT_SORT_KEYS``. ``encode`` writes non-ASCII text as UTF-8, like orjson, so
replaying a corpus through it passes. ``encode_ascii`` keeps the standard
library's default ``ensure_ascii=True``, which escapes every non-ASCII character
(``"\\u00c5land Islands"``), so records with accented names diverge:

    python examples/replay_corpus.py countries.jsonl
    python -m shadowfn replay examples.codec_replay:encode countries.jsonl        # exit 0
    python -m shadowfn replay examples.codec_replay:encode_ascii countries.jsonl  # exit 1
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from shadowfn import shadow


def encode_orjson(record: dict[str, Any]) -> bytes:
    """Encode ``record`` with orjson: compact, sorted keys, UTF-8."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


@shadow(encode_orjson, rate=5, timeout=0.05)
def encode(record: dict[str, Any]) -> bytes:
    """Encode ``record`` with the standard library, writing non-ASCII text as UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@shadow(encode_orjson, rate=5, timeout=0.05)
def encode_ascii(record: dict[str, Any]) -> bytes:
    """Encode ``record`` with the standard library's default escaping of non-ASCII text."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
