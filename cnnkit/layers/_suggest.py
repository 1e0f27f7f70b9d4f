"""Suggestions ("did you mean") for every unknown word: layer kinds, keys, sections, names.

Candidates are ranked by edit distance (insert, delete, substitute, swap two neighbours: the
typos people make), one per canonical name, so twelve spellings of two pooling kinds never
crowd out the rest. A candidate is offered only when it looks like a typo of the word:

- at most 1 edit for words up to 4 letters, 2 up to 11, 3 beyond;
- the first letter kept, unless the whole difference is one edit (``flip`` -> ``hflip``);
- no two neighbouring letters replaced: that changes a word part, not a letter, and gives
  opposites (``minpool`` -> ``maxpool``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SHOWN = 80  # canonical names listed when nothing is close (every layer kind fits)


def _table(a: str, b: str) -> list[list[int]]:
    """Optimal-string-alignment distances between every prefix of ``a`` and of ``b``."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d


def _substituted(a: str, b: str, d: list[list[int]]) -> list[int]:
    """Positions of ``a`` that one cheapest alignment substitutes (matches and swaps first)."""
    i, j, subs = len(a), len(b), []
    while i and j:
        if a[i - 1] == b[j - 1] and d[i][j] == d[i - 1][j - 1]:
            i, j = i - 1, j - 1
        elif (
            i > 1
            and j > 1
            and a[i - 1] == b[j - 2]
            and a[i - 2] == b[j - 1]
            and (d[i][j] == d[i - 2][j - 2] + 1)
        ):
            i, j = i - 2, j - 2
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        elif d[i][j] == d[i][j - 1] + 1:
            j -= 1
        else:
            subs.append(i - 1)
            i, j = i - 1, j - 1
    return subs


def typo_distance(word: str, candidate: str) -> int | None:
    """Edits from ``word`` to ``candidate`` when it reads as a typo of it, else None."""
    a, b = word.lower(), candidate.lower()
    d = _table(a, b)
    distance = d[len(a)][len(b)]
    if distance > (1 if len(a) <= 4 else 2 if len(a) <= 11 else 3):
        return None
    if distance > 1 and a[:1] != b[:1]:
        return None
    subs = sorted(_substituted(a, b, d))
    if any(q == p + 1 for p, q in zip(subs, subs[1:])):
        return None
    return distance


def closest(word: str, canonical: Mapping[str, str]) -> list[str]:
    """Spellings to offer for ``word``, best first: one per canonical name, the canonical
    spelling unless an alias is strictly closer."""
    best: dict[str, tuple[int, bool, str]] = {}
    for spelling, name in canonical.items():
        distance = typo_distance(word, spelling)
        if distance is None:
            continue
        rank = (distance, spelling != name, spelling)
        if name not in best or rank < best[name]:
            best[name] = rank
    ranked = sorted(best.values())
    return [spelling for distance, _, spelling in ranked if distance == ranked[0][0]][:3]


def suggest(
    word: str,
    choices: Mapping[str, Any] | Iterable[str],
    canonical: Mapping[str, str] | None = None,
) -> str:
    """`` 'w' (did you mean 'x'?)`` when a close match exists, else `` 'w'; expected one of:``
    the allowed canonical names. ``canonical`` maps aliases to the name they stand for."""
    names = {str(c): str(c) for c in choices}
    names.update(canonical or {})
    close = closest(word, names)
    if close:
        return f" {word!r} (did you mean {' or '.join(map(repr, close))}?)"
    options = sorted(set(names.values()))
    more = len(options) - SHOWN
    shown = ", ".join(options[:SHOWN]) + (f", ... ({more} more)" if more > 0 else "")
    return f" {word!r}; expected one of: {shown}"
