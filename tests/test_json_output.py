"""``--json`` is one compact line in a pipe and indented on a terminal (issue 16 item 2):
the same document either way, checked with Python's own ``json`` as the parser."""

from __future__ import annotations

import json
import math

import pytest

from tests.test_cli_manners import on_terminal, piped


def _strict(text: str):
    """Parse as a strict reader does: NaN/Infinity tokens are an error, not a float."""

    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


class Scalar:  # a numpy/torch scalar: JSON only through .item()
    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


DOCUMENTS = [
    {"model": "lenet", "totals": {"params": 61706, "macs": 416520}, "layers": [[1, 2], []]},
    {"loss": math.nan, "best": -math.inf, "ok": True, "names": ("a", "b"), "note": None},
    {"value": Scalar(0.25), "ints": {3, 1, 2}, "text": 'quotes " and \\ and ü'},
    [],
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_compact_and_pretty_are_one_document(document):
    from cnnkit.jsonsafe import dumps

    compact, pretty = dumps(document, indent=None), dumps(document)
    assert "\n" not in compact and ", " not in compact.replace('", "', "")
    assert _strict(compact) == _strict(pretty)
    # pretty is json's own indent=2 of that document: the text --json printed before
    assert pretty == json.dumps(_strict(compact), indent=2)


def test_only_a_document_json_refuses_is_walked(monkeypatch):
    """The fast path: a document of plain JSON types goes straight to the C encoder."""
    from cnnkit import jsonsafe

    walked = []
    real = jsonsafe.finite
    monkeypatch.setattr(jsonsafe, "finite", lambda v: walked.append(1) or real(v))
    jsonsafe.dumps(DOCUMENTS[0], indent=None)
    assert walked == []
    assert _strict(jsonsafe.dumps(DOCUMENTS[1], indent=None))["loss"] is None
    assert walked  # walked (finite recurses through its containers)


def test_a_pipe_gets_one_compact_line_and_a_terminal_the_same_document_indented():
    done = piped("params", "lenet", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.endswith("}\n")
    shown = on_terminal(100, "params", "lenet", "--json")
    assert shown.count("\n") > 50  # indented, one value a line
    assert _strict(shown) == _strict(done.stdout)
    assert shown.strip() == json.dumps(_strict(done.stdout), indent=2)
