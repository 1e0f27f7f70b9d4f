"""A params table of thousands of rows says how ``--depth`` groups it (issue 16 item 1).

The oracle for the hint's numbers is the command itself: ``--depth D --csv -`` must print as
many rows as the hint promised.
"""

from __future__ import annotations

import json

from tests.test_cli_manners import piped

BIG = ["densenet121", "--set", "model.depth=8"]  # 3,268 layers


def test_a_big_table_names_the_depth_that_groups_it_and_the_rows_it_gives():
    shown = piped("params", *BIG)
    assert shown.returncode == 0, shown.stderr
    hint = shown.stderr.strip()
    assert (
        hint
        == "note: 3,268 rows; --depth 2 groups them into 15 by the first 2 parts of their names"
    )
    assert hint not in shown.stdout
    grouped = piped("params", *BIG, "--depth", "2", "--csv", "-")
    assert grouped.returncode == 0, grouped.stderr
    assert len(grouped.stdout.splitlines()) == 1 + 15  # the header, then the promised rows
    assert grouped.stderr == ""  # grouped, or exported: no hint


def test_json_and_short_tables_carry_no_hint():
    as_json = piped("params", *BIG, "--json")
    assert as_json.stderr == ""
    assert len(json.loads(as_json.stdout)["layers"]) == 3268
    assert piped("params", "resnet50").stderr == ""


def test_the_hint_counts_the_groups_aggregate_prints():
    from cnnkit.analysis.costs import LayerCost, aggregate
    from cnnkit.cli.big_tables import BIG_TABLE, depth_hint, group_counts

    names = [f"stage{i % 3}.block{i % 7}.unit{i}" for i in range(BIG_TABLE + 1)]
    rows = [LayerCost(n, "relu", (1,), 0, 0, 0, 0, 0, 1, 4) for n in names]
    assert group_counts(names) == {d: len(aggregate(rows, d)) for d in (1, 2, 3, 4)}
    assert depth_hint(names) == (
        "note: 2,001 rows; --depth 2 groups them into 21 by the first 2 parts of their names"
    )
    assert depth_hint(names[:BIG_TABLE]) is None
    flat = [str(i) for i in range(BIG_TABLE + 1)]  # a generated chain: nothing to group
    assert "--depth cannot shorten this table" in depth_hint(flat)
