"""A hint under a table of thousands of rows: how ``--depth`` would group it.

A table that long is read by scrolling, or not at all; grouping the rows by the first parts of
their dotted names (``--depth``) turns a DenseNet's 3,000 layers into its blocks. The hint
goes to stderr, so stdout keeps only the table, and ``--json``/``--csv``/``--markdown`` are
never touched.
"""

from __future__ import annotations

BIG_TABLE = 2_000  # rows above which the table says how to group it
ENOUGH_GROUPS = 200  # the deepest --depth at or under this many rows is the one suggested
DEPTHS = (1, 2, 3, 4)


def group_counts(names: list[str]) -> dict[int, int]:
    """How many rows ``--depth D`` would print, for each D in ``DEPTHS``: the distinct
    prefixes of the first D dot-separated parts (one pass over the names per depth)."""
    return {d: len({".".join(name.split(".")[:d]) for name in names}) for d in DEPTHS}


def depth_hint(names: list[str]) -> str | None:
    """The one-line note for a table of these row names, or None for a short table."""
    rows = len(names)
    if rows <= BIG_TABLE:
        return None
    fewer = {d: n for d, n in group_counts(names).items() if n < rows}
    if not fewer:
        return (
            f"note: {rows:,} rows; their names have no dotted prefixes to group by, so --depth "
            "cannot shorten this table (--csv, --markdown or --json carry every row)"
        )
    small = [d for d, n in fewer.items() if n <= ENOUGH_GROUPS]
    depth = max(small) if small else min(fewer)
    return (
        f"note: {rows:,} rows; --depth {depth} groups them into {fewer[depth]:,} by the first "
        f"{depth} part{'s' if depth > 1 else ''} of their names"
    )


def print_depth_hint(names: list[str]) -> None:
    """Write ``depth_hint`` to stderr, if there is one."""
    import sys

    hint = depth_hint(names)
    if hint:
        sys.stderr.write(hint + "\n")
