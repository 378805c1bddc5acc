"""Every resource bomb of tools/bombs.py is refused with a located error (cnnc/ir/irgen/limits.py,
the front end's limits in cnnc/frontend/loader.py and parser.py). Whether each is refused fast
enough is what tools/bombs.py measures; nothing is timed here."""
import sys

import pytest

from cnnc.cli import main
from cnnc_testlib import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from bombs import BOMBS, _write  # noqa: E402

STEPS = ("spec takes more than 3,000,000 steps to expand (large values cost a step per item, nodes and block "
         "instances 15 steps each)")
TOO_LARGE = "integer too large (> 2^62)"
TOO_LONG = "spec is too long: more than 40,000 tokens (in this file and the files it imports together)"

# bomb -> the first line of stderr (written by hand: the location is where the limit was crossed)
EXPECTED = {
    "power": f"b.cnn:3:11: error: {TOO_LARGE}",  # at `**`, before Python computes 7 ** 10^9
    "floor-division-huge": f"b.cnn:3:19: error: {TOO_LARGE}",  # at the `*` whose result is past 2^62
    "modulo-huge-literal": f"b.cnn:3:9: error: {TOO_LARGE}",  # the literal itself
    "int-of-huge-float": f"b.cnn:3:9: error: {TOO_LARGE}",
    "huge-range": f"b.cnn:3:20: error: {TOO_LARGE}",
    "string-doubling": "b.cnn:4:32: error: string would be longer than 10,000 characters",
    "list-doubling": "b.cnn:4:32: error: list would have more than 1,000,000 items",
    "lists-compare": f"b.cnn:5:34: error: {STEPS}",  # comparing costs a step per item
    "shared-lists-compare": f"b.cnn:7:11: error: {STEPS}",  # shared sublists count each time they are reached
    "min-of-long-lists": f"b.cnn:4:36: error: {STEPS}",
    "step-budget": "b.cnn:3:35: error: spec takes more than 3,000,000 steps to expand; is a loop too long?",
    "nested-lists": "b.cnn:1:5005: error: expression is nested too deeply",
    "deep-expression": "b.cnn:3:20009: error: expression is nested too deeply",
    "constants-file-4mib": f"c.cnn:5712:7: error: {TOO_LONG}",  # the 40,001st token of both files
    "sum-500000-terms": f"b.cnn:1:80001: error: {TOO_LONG}",
    "many-imports": "b.cnn:1001:1: error: cannot import 'f1000.cnn': a spec may read at most 1000 files",
    "import-dev-zero": "b.cnn:1:1: error: '/dev/zero' is not a regular file (a device, FIFO or socket); specs are "
                       "read from regular files only",
    "import-fifo": "b.cnn:1:1: error: 'f.cnn' is not a regular file (a device, FIFO or socket); specs are read "
                   "from regular files only",
    "import-outside": "b.cnn:1:1: error: cannot import '/proc/self/environ': it lies outside the directories a spec "
                      "may import from ('.' and below, and the spec library); add one with --import-root DIR",
    "wide-concat": "b.cnn:3:20: error: concat of 100,000 tensors; an op takes at most 10,000 inputs",
    "node-budget": "b.cnn:3:40: error: spec expands past the budget of 120,000 nodes; is a loop or depth too large?",
    "instance-budget": "b.cnn:4:40: error: spec expands past the budget of 100,000 block instances and groups; is a "
                       "loop or depth too large?",
    "long-label": "b.cnn:5:22: error: instance name of 8,192 characters; the limit is 128",
    "set-huge-integer": f"cnnc: error: --set c: {TOO_LARGE}",
}
SLOW = {"node-budget", "instance-budget", "step-budget", "shared-lists-compare", "lists-compare", "deep-expression"}


def test_every_bomb_has_an_expected_refusal():
    assert set(EXPECTED) | {"round-huge-ndigits", "tokens-just-under-cap"} == set(BOMBS)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in EXPECTED])
def test_bomb_is_refused_with_a_located_error(tmp_path, monkeypatch, capsys, name):
    files, argv = BOMBS[name]
    _write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0] == EXPECTED[name]


def test_round_with_huge_ndigits_is_computed_not_refused(tmp_path, monkeypatch):
    """round(5, -10^9) is 0; Python would compute 10^(10^9) to say so."""
    from cnnc.pipeline import front_end

    text = "network n() {\n    x = input(3, 8, 8)\n    output o = x -> conv(round(5, -1000000000) + round(7, 10**18), 1)\n}\n"
    g = front_end(text).graph
    assert g.nodes[-1].attr("out") == 7
