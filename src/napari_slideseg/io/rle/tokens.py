"""Kaggle RLE text: parsing whitespace-separated integers and formatting runs, vectorised."""

from __future__ import annotations

import numpy as np

from .checks import RLEError

# Integers formatted per vectorised batch.
_FORMAT_BATCH = 1 << 20
# Tokens longer than this many characters cannot be int64 pixel indices.
_MAX_TOKEN_CHARS = 18

_SPACE = np.zeros(256, bool)
_SPACE[[9, 10, 11, 12, 13, 32]] = True
_DIGIT = np.zeros(256, bool)
_DIGIT[48:58] = True
_ALLOWED = _SPACE | _DIGIT
_ALLOWED[45] = True  # '-', reported later as a bad start or length
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)
_INT64_MAX = 2**63 - 1


def _bad_token(tokens: list[str]) -> RLEError:
    for i, tok in enumerate(tokens, 1):
        body = tok[1:] if tok.startswith("-") else tok
        if not (body.isascii() and body.isdigit()):
            return RLEError(f"token {i} ({tok[:40]!r}) is not an integer")
        if len(tok) > _MAX_TOKEN_CHARS and abs(int(tok)) > _INT64_MAX:
            return RLEError(
                f"token {i} ({tok[:40]!r}) is larger than any pixel index (at most {_INT64_MAX})"
            )
    return RLEError("the RLE string could not be read as integers")


def parse_ints(text: str) -> np.ndarray:
    """Whitespace-separated integers of ``text`` as int64 (vectorised, strict).

    Parameters
    ----------
    text
        ASCII digits, ``-`` signs and whitespace.

    Returns
    -------
    numpy.ndarray
        The int64 values in order.

    Raises
    ------
    RLEError
        A token that is not an integer (naming its 1-based position) or is
        larger than int64.
    """
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise _bad_token(text.split()) from None
    b = np.frombuffer(raw, np.uint8)
    if b.size == 0:
        return np.empty(0, np.int64)
    if not _ALLOWED[b].all():
        raise _bad_token(text.split())
    sp = _SPACE[b]
    word = ~sp
    first = word.copy()
    first[1:] &= sp[:-1]
    last = word.copy()
    last[:-1] &= sp[1:]
    starts = np.flatnonzero(first)
    lengths = np.flatnonzero(last) - starts + 1
    minus = np.flatnonzero(b == 45)
    if minus.size:
        nxt = np.minimum(minus + 1, b.size - 1)
        if not (first[minus].all() and (minus + 1 < b.size).all() and _DIGIT[b[nxt]].all()):
            raise _bad_token(text.split())
    if lengths.size and lengths.max() > _MAX_TOKEN_CHARS:
        # Long tokens (leading zeros, or really too large): exact Python integers.
        toks = text.split()
        vals = [int(t) for t in toks]
        if any(abs(v) > _INT64_MAX for v in vals):
            raise _bad_token(toks)
        return np.array(vals, np.int64)
    try:
        out = np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):  # pragma: no cover - guarded above
        out = np.array(text.split(), dtype=np.int64)
    if out.size != starts.size:  # pragma: no cover - guarded above
        raise _bad_token(text.split())
    return out


def join_ints(a: np.ndarray) -> str:
    """``" ".join(map(str, a))`` for non-negative integers, vectorised.

    Digits are written into a ``(digits + 1, n)`` byte table (one row per
    decimal place, so every step is a contiguous vector operation), then each
    number's significant digits and a space are picked in order.

    Parameters
    ----------
    a
        1D array of non-negative integers.

    Returns
    -------
    str
        The numbers separated by single spaces; ``""`` when ``a`` is empty.
    """
    if a.size == 0:
        return ""
    if a.size > _FORMAT_BATCH:
        return " ".join(
            join_ints(a[i : i + _FORMAT_BATCH]) for i in range(0, a.size, _FORMAT_BATCH)
        )
    top = int(a.max())
    d = len(str(top))
    x = np.asarray(a).astype(np.uint32 if top < 2**32 else np.uint64)
    nd = np.ones(a.size, np.int8)
    for p in _POW10[: d - 1]:
        nd += x >= p
    table = np.empty((d + 1, a.size), np.uint8)
    table[d] = 32
    for j in range(d - 1, -1, -1):
        q = x // 10  # division by a constant: much faster than np.divmod
        np.subtract(x, q * 10, out=x)
        table[j] = x
        x = q
    table[:d] += 48
    keep = np.arange(d + 1, dtype=np.int8)[:, None] >= (d - nd)[None, :]
    chars = np.ascontiguousarray(table.T)[np.ascontiguousarray(keep.T)]
    return chars[:-1].tobytes().decode("ascii")


def format_runs(starts: np.ndarray, ends: np.ndarray, base: int) -> str:
    """Kaggle RLE text of 0-based runs ``[starts, ends)``.

    Parameters
    ----------
    starts, ends
        Sorted, disjoint 0-based run bounds (int64).
    base
        Index of the first pixel in the text, 0 or 1.

    Returns
    -------
    str
        ``"start length start length ..."``; ``""`` without runs.
    """
    pairs = np.empty(2 * starts.size, np.int64)
    pairs[0::2] = starts
    pairs[0::2] += base
    pairs[1::2] = ends - starts
    return join_ints(pairs)
