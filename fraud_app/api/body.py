"""Decoding a request body: orjson when no key can have been given twice, the stdlib's exact path otherwise.

Every problem is a 400 that names it (bad JSON, a duplicate key, a huge number, nesting too deep).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import numpy as np
import orjson

from fraud_app.api.base import APIError


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return result


_KEY_END = re.compile(rb'"\s*:')
_SPACED_KEY_END = re.compile(rb'"\s+:')


def _key_count(value: Any) -> int:
    """How many object keys a decoded JSON value holds, all levels."""
    if type(value) is dict:
        return len(value) + sum(_key_count(v) for v in value.values() if type(v) in (dict, list))
    if type(value) is list:
        return sum(_key_count(v) for v in value if type(v) in (dict, list))
    return 0


def _fast_loads(body: bytes) -> Any:
    """orjson's decoding of ``body``, or ``None`` when the exact (stdlib) path must decide.

    orjson keeps the last of duplicate keys silently, so its result is used only when no key can
    have been dropped: every key in the text ends with ``"`` then ``:``, so when the text holds no
    more such ends than the decoded objects hold keys, no key was given twice. Anything orjson
    refuses (bad JSON, NaN, huge integers, deep nesting) goes to the stdlib path for its error.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    compact = body.count(b'":')  # with no `"` + whitespace + `:` in the text, an upper bound of the keys
    # A quick lower bound of the keys first (the top level and a batch's rows, not what lies inside
    # them): equal to the upper bound only when no key was dropped, and it is, for every usual request.
    if compact == _shallow_key_count(payload) and not _spaced_quote(body):
        return payload
    try:
        keys = _key_count(payload)
    except RecursionError:  # orjson nests deeper than Python may recurse
        return None
    if compact == keys and _SPACED_KEY_END.search(body) is None:
        return payload
    if len(_KEY_END.findall(body)) == keys:
        return payload
    return None


def _shallow_key_count(payload: Any) -> int:
    """The keys of ``payload`` and of the objects in its ``transactions`` list: at most all its keys."""
    if type(payload) is not dict:
        return -1
    rows = payload.get("transactions")
    if type(rows) is not list:
        return len(payload)
    return len(payload) + sum(len(row) for row in rows if type(row) is dict)


def _spaced_quote(body: bytes) -> bool:
    """True when a ``"`` is followed by JSON whitespace somewhere: four substring scans for a small body; for
    a large one, one NumPy pass over the bytes that follow a quote (a 9 MB batch: about 10 ms against 45)."""
    if len(body) < _VECTOR_SCAN_BYTES:
        return b'" ' in body or b'"\n' in body or b'"\t' in body or b'"\r' in body
    raw = np.frombuffer(body, dtype=np.uint8)
    after = raw[1:][raw[:-1] == _QUOTE]
    return bool(np.isin(after, _JSON_SPACE).any())


_VECTOR_SCAN_BYTES = 64 * 1024
_QUOTE = ord('"')
_JSON_SPACE = np.frombuffer(b" \t\n\r", dtype=np.uint8)


def parse_json_body(body: bytes) -> Any:
    """Decode a request body; 400 naming the problem (bad JSON, a duplicate key, a huge number, nesting)."""
    if not body.strip():
        raise APIError(400, "empty request body: send a JSON object with the 29 model inputs", "body")
    if body[:1] in (b"{", b"[") or body.lstrip()[:1] in (b"{", b"["):
        payload = _fast_loads(body)
        if payload is not None:
            return payload
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"the request body is not UTF-8 text (undecodable byte at offset {exc.start})",
                       "body") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except DuplicateKeyError as exc:
        raise APIError(400, f"the request body names the key {exc.key[:60]!r} twice in one object; "
                            "give each key once", exc.key[:60]) from None
    except json.JSONDecodeError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, "
                            f"column {exc.colno})", "body") from None
    except RecursionError:
        raise APIError(400, "the request body is not valid JSON for this API: it is nested too deeply", "body") \
            from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        detail = str(exc)
        if "digits" in detail:
            detail = ("a number has too many digits (Python refuses integers of more than "
                      f"{sys.get_int_max_str_digits()} digits); model inputs must lie within "
                      "+/-3.4e38")
        raise APIError(400, f"the request body is not valid JSON for this API: {detail}", "body") from None
