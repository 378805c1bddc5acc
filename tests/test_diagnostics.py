"""Every class of spec mistake gives one exact, located diagnostic and exit status 1."""
import subprocess
import sys
import textwrap

import pytest

from cnnc.cli import main
from cnnc_testlib import ROOT

NET = "network n() {{\n    x = input(3, 32, 32)\n{body}\n}}\n"

# (case id, spec text, expected stderr). Written by hand from what the message should say.
CASES = [
    ("syntax-unexpected-token", "network n() {\n    x = input(3, 32, 32\n    output o = x\n}\n",
     """bad.cnn:3:5: error: unexpected 'output'; expected ')' or ','
    3 |     output o = x
      |     ^
"""),
    ("syntax-eof", "network n() {\n    x = input(3, 32, 32)\n",
     """bad.cnn:2:25: error: unexpected end of file; expected a statement or '}'
    2 |     x = input(3, 32, 32)
      |                         ^
"""),
    ("syntax-character", NET.format(body="    output o = x $ 2"),
     """bad.cnn:3:18: error: unexpected character '$'
    3 |     output o = x $ 2
      |                  ^
"""),
    ("syntax-unterminated-string", NET.format(body='    output o = x -> conv(8, 3, padding="same)'),
     """bad.cnn:3:40: error: unterminated string (strings end on the same line)
    3 |     output o = x -> conv(8, 3, padding="same)
      |                                        ^
"""),
    ("syntax-assign-in-condition", NET.format(body="    if x.channels = 3 { x = x }\n    output o = x"),
     """bad.cnn:3:19: error: unexpected '='; expected '{' or an operator
    3 |     if x.channels = 3 { x = x }
      |                   ^
note: use '==' to compare
"""),
    ("unknown-op", NET.format(body="    output o = x -> conv(8, 3) -> rellu"),
     """bad.cnn:3:35: error: unknown op or block 'rellu'; did you mean 'relu'?
    3 |     output o = x -> conv(8, 3) -> rellu
      |                                   ^
"""),
    ("unknown-name", NET.format(body="    y = x -> conv(8, 3)\n    output o = yy -> relu"),
     """bad.cnn:4:16: error: unknown name 'yy'; did you mean 'y'?
    4 |     output o = yy -> relu
      |                ^
"""),
    ("unknown-argument", NET.format(body="    output o = x -> conv(8, 3, strid=2)"),
     """bad.cnn:3:32: error: conv has no argument 'strid'; did you mean 'stride'?
    3 |     output o = x -> conv(8, 3, strid=2)
      |                                ^
note: signature: conv(x, out, kernel, stride=1, padding=0, dilation=1, groups=1, bias=true)
"""),
    ("wrong-argument-type", NET.format(body="    output o = x -> conv(8, 3, bias=1)"),
     """bad.cnn:3:32: error: 'bias' of conv must be true or false, got the integer 1
    3 |     output o = x -> conv(8, 3, bias=1)
      |                                ^
"""),
    ("missing-argument", NET.format(body="    output o = x -> conv(8)"),
     """bad.cnn:3:21: error: conv needs argument 'kernel'
    3 |     output o = x -> conv(8)
      |                     ^
note: signature: conv(x, out, kernel, stride=1, padding=0, dilation=1, groups=1, bias=true)
"""),
    ("op-without-input", NET.format(body="    output o = conv(8, 3)"),
     """bad.cnn:3:21: error: conv expects a tensor as input, got the integer 8
    3 |     output o = conv(8, 3)
      |                     ^
note: write x -> conv(...) or conv(x, ...)
"""),
    ("channel-mismatch-at-add",
     "block res(x, c) {\n    y = x -> conv(c, 3, padding=1) -> bn\n    return relu(y + x)\n}\n"
     "network n() {\n    x = input(3, 32, 32) -> conv(16, 3, padding=1)\n    output o = x -> res(32) as block1\n}\n",
     """bad.cnn:3:19: error: channel mismatch at add: 32x32x32 vs 16x32x32
    3 |     return relu(y + x)
      |                   ^
note: input shapes: 32x32x32, 16x32x32
note: elementwise ops need equal sizes, or 1 to broadcast
bad.cnn:7:21: note: in 'block1' (an instance of block 'res'), called here
"""),
    ("spatial-mismatch-at-concat",
     NET.format(body="    a = x -> conv(8, 3)\n    b = x -> conv(8, 3, padding=1)\n    output o = concat(a, b)"),
     """bad.cnn:5:16: error: spatial mismatch at concat: input 1 is 8x30x30, input 2 is 8x32x32
    5 |     output o = concat(a, b)
      |                ^
note: input shapes: 8x30x30, 8x32x32
note: concat joins along channels; every input needs the same height and width
"""),
    ("groups-not-dividing", NET.format(body="    output o = x -> conv(8, 3, groups=2)"),
     """bad.cnn:3:21: error: groups (2) must divide the input channels (3)
    3 |     output o = x -> conv(8, 3, groups=2)
      |                     ^
note: input shape 3x32x32
"""),
    ("kernel-larger-than-input", NET.format(body="    output o = x -> maxpool(8, stride=8) -> conv(8, 5)"),
     """bad.cnn:3:45: error: conv kernel larger than its padded input: kernel 5 (dilation 1) spans 5, but the padded height is 4
    3 |     output o = x -> maxpool(8, stride=8) -> conv(8, 5)
      |                                             ^
note: input shape: 3x4x4
"""),
    ("recursive-block",
     "block a(x) { return x -> b }\nblock b(x) { return x -> relu -> a }\n"
     "network n() {\n    x = input(3, 8, 8)\n    output o = x -> a\n}\n",
     """bad.cnn:2:34: error: recursive block 'a' (a -> b -> a); blocks cannot call themselves
    2 | block b(x) { return x -> relu -> a }
      |                                  ^
bad.cnn:1:26: note: in 'a1.b1' (an instance of block 'b'), called here
bad.cnn:5:21: note: in 'a1' (an instance of block 'a'), called here
"""),
    ("node-budget", NET.format(body="    for i in range(1000000) { x = x -> relu }\n    output o = x"),
     """bad.cnn:3:40: error: spec expands past the budget of 120,000 nodes; is a loop or depth too large?
    3 |     for i in range(1000000) { x = x -> relu }
      |                                        ^
"""),
    ("step-budget", NET.format(body="    for i in range(100000000) { y = i }\n    output o = x"),
     """bad.cnn:3:14: error: range of 100,000,000 items is longer than the step budget (3,000,000)
    3 |     for i in range(100000000) { y = i }
      |              ^
"""),
    ("missing-import", 'import "blocks/nothere.cnn"\n' + NET.format(body="    output o = x"),
     """bad.cnn:1:1: error: cannot import 'blocks/nothere.cnn': no such file (looked for blocks/nothere.cnn and in the spec library)
    1 | import "blocks/nothere.cnn"
      | ^
"""),
    ("import-cycle", 'import "bad.cnn"\n' + NET.format(body="    output o = x"),
     """bad.cnn:1:1: error: import cycle: bad.cnn -> bad.cnn
    1 | import "bad.cnn"
      | ^
"""),
    ("huge-tensor", "network n() {\n    x = input(3, 100000, 100000)\n    output o = x\n}\n",
     """bad.cnn:2:9: error: input would make a tensor of shape 3x100000x100000 (30,000,000,000 elements per sample); the limit is 2^32
    2 |     x = input(3, 100000, 100000)
      |         ^
"""),
    ("integer-overflow", NET.format(body="    c = 2\n    for i in range(70) { c = c * 2 }\n    output o = x"),
     """bad.cnn:4:32: error: integer too large (> 2^62)
    4 |     for i in range(70) { c = c * 2 }
      |                                ^
"""),
    ("division-by-zero", NET.format(body="    output o = x -> conv(64 // 0, 3)"),
     """bad.cnn:3:29: error: division by zero
    3 |     output o = x -> conv(64 // 0, 3)
      |                             ^
"""),
    ("power-too-large", NET.format(body="    output o = x -> conv(2 ** 64, 3)"),
     """bad.cnn:3:28: error: integer too large (> 2^62)
    3 |     output o = x -> conv(2 ** 64, 3)
      |                            ^
"""),
    ("power-complex", NET.format(body="    output o = x -> conv((-4) ** 0.5, 3)"),
     """bad.cnn:3:31: error: (-4) ** 0.5: a negative number to a fractional power
    3 |     output o = x -> conv((-4) ** 0.5, 3)
      |                               ^
"""),
    ("duplicate-instance-name", NET.format(body="    x = x -> conv(8, 3) as stem -> relu as stem\n    output o = x"),
     """bad.cnn:3:44: error: instance name 'stem' is already used in this scope
    3 |     x = x -> conv(8, 3) as stem -> relu as stem
      |                                            ^
bad.cnn:3:28: note: first used here
"""),
    ("tensor-as-condition", NET.format(body="    if x { x = x -> relu }\n    output o = x"),
     """bad.cnn:3:8: error: a tensor is neither true nor false; compare its shape, e.g. x.channels == 64
    3 |     if x { x = x -> relu }
      |        ^
"""),
    ("no-output", NET.format(body="    y = x -> relu"),
     """bad.cnn:1:9: error: network 'n' has no output; add e.g. `output logits = x`
    1 | network n() {
      |         ^
"""),
    ("no-network", "block b(x) { return x }\n",
     """bad.cnn:1:1: error: no network in this spec; define one with `network name(...) { ... }`
    1 | block b(x) { return x }
      | ^
"""),
    ("block-without-return", "block b(x) { y = x }\n" + NET.format(body="    output o = x -> b"),
     """bad.cnn:1:7: error: block 'b' ended without `return`
    1 | block b(x) { y = x }
      |       ^
bad.cnn:4:21: note: in 'b1' (an instance of block 'b'), called here
"""),
    ("block-wrong-argument", "block b(x, c) { return x -> conv(c, 1) }\n" + NET.format(body="    output o = x -> b(cc=3)"),
     """bad.cnn:4:23: error: block 'b' has no parameter 'cc'; did you mean 'c'?
    4 |     output o = x -> b(cc=3)
      |                       ^
note: block b(x, c)
"""),
    ("flat-into-conv", NET.format(body="    output o = x -> flatten -> conv(8, 1)"),
     """bad.cnn:3:32: error: conv expects a feature map CxHxW, got a tensor of shape 3072
    3 |     output o = x -> flatten -> conv(8, 1)
      |                                ^
note: flatten turns a map into a vector; spatial ops must come before it
"""),    # the ops and statements of issue 15 (reach) and `as _` (issue 16)
    ("conv-transpose-groups", NET.format(body='    output o = x -> conv_transpose(8, 3, groups=2)'),
     """bad.cnn:3:21: error: groups (2) must divide the input channels (3)
    3 |     output o = x -> conv_transpose(8, 3, groups=2)
      |                     ^
note: input shape 3x32x32
"""),
    ("conv-transpose-output-padding", NET.format(body='    output o = x -> conv_transpose(8, 3, stride=2, output_padding=2)'),
     """bad.cnn:3:21: error: output_padding (2) must be smaller than the stride (2) or the dilation (1)
    3 |     output o = x -> conv_transpose(8, 3, stride=2, output_padding=2)
      |                     ^
note: input shape: 3x32x32
note: along the height
"""),
    ("conv-transpose-crops-everything", 'network n() {\n    x = input(3, 1, 4)\n    output o = x -> conv_transpose(8, 1, padding=1)\n}\n',
     """bad.cnn:3:21: error: conv_transpose would make a map of height -1: padding 1 on each side crops 2 of the 1 rows it makes
    3 |     output o = x -> conv_transpose(8, 1, padding=1)
      |                     ^
note: input shape: 3x1x4
"""),
    ("upsample-neither", NET.format(body='    output o = x -> upsample'),
     """bad.cnn:3:21: error: upsample needs exactly one of 'scale' or 'size'
    3 |     output o = x -> upsample
      |                     ^
note: input shape: 3x32x32
note: e.g. upsample(scale=2) or upsample(size=[28, 28])
"""),
    ("upsample-both", NET.format(body='    output o = x -> upsample(scale=2, size=[64, 64])'),
     """bad.cnn:3:21: error: upsample needs exactly one of 'scale' or 'size', got both
    3 |     output o = x -> upsample(scale=2, size=[64, 64])
      |                     ^
note: input shape: 3x32x32
note: e.g. upsample(scale=2) or upsample(size=[28, 28])
"""),
    ("upsample-align-corners-nearest", NET.format(body='    output o = x -> upsample(scale=2, align_corners=true)'),
     """bad.cnn:3:21: error: align_corners needs mode "bilinear" or "bicubic" (torch's rule)
    3 |     output o = x -> upsample(scale=2, align_corners=true)
      |                     ^
note: input shape: 3x32x32
"""),
    ("upsample-unknown-mode", NET.format(body='    output o = x -> upsample(scale=2, mode="linear")'),
     """bad.cnn:3:39: error: 'mode' of upsample must be one of "nearest", "bilinear", "bicubic", got "linear"
    3 |     output o = x -> upsample(scale=2, mode="linear")
      |                                       ^
"""),
    ("upsample-mode-unquoted", NET.format(body='    output o = x -> upsample(scale=2, mode=bilinear)'),
     """bad.cnn:3:44: error: unknown name 'bilinear'; strings are quoted: mode="bilinear"
    3 |     output o = x -> upsample(scale=2, mode=bilinear)
      |                                            ^
"""),
    ("upsample-negative-scale", NET.format(body='    output o = x -> upsample(scale=[2, -1])'),
     """bad.cnn:3:30: error: 'scale' of upsample must be positive, got [2, -1]
    3 |     output o = x -> upsample(scale=[2, -1])
      |                              ^
"""),
    ("upsample-to-nothing", NET.format(body='    output o = x -> upsample(scale=0.01)'),
     """bad.cnn:3:21: error: upsample by 0.01 would make a 0x0 map (torch floors input * scale)
    3 |     output o = x -> upsample(scale=0.01)
      |                     ^
note: input shape: 3x32x32
"""),
    ("split-not-divisible", NET.format(body='    a, b = split(x, 2)\n    output o = a'),
     """bad.cnn:3:12: error: split into 2 equal parts needs channels divisible by 2, got 3
    3 |     a, b = split(x, 2)
      |            ^
note: input shape: 3x32x32
note: give the part sizes instead, e.g. split(x, [a, b]) with a + b = channels
"""),
    ("split-sizes-sum", NET.format(body='    p = split(x, [1, 1])\n    output o = p[0]'),
     """bad.cnn:3:9: error: split sizes [1, 1] add up to 2, but the input has 3 channels
    3 |     p = split(x, [1, 1])
      |         ^
note: input shape: 3x32x32
"""),
    ("split-empty-part", NET.format(body='    p = split(x, [3, 0])\n    output o = p[0]'),
     """bad.cnn:3:18: error: 'parts' of split: every part needs at least one channel, got [3, 0]
    3 |     p = split(x, [3, 0])
      |                  ^
"""),
    ("slice-out-of-range", NET.format(body='    output o = x -> slice(2, 5)'),
     """bad.cnn:3:21: error: slice [2:5] must select channels 2 up to 5 of the input's 3
    3 |     output o = x -> slice(2, 5)
      |                     ^
note: input shape: 3x32x32
note: 0 <= start < stop <= channels
"""),
    ("unpack-count", NET.format(body='    a, b = split(x, 3)\n    output o = a'),
     """bad.cnn:3:12: error: cannot unpack a list of 3 into 2 names (a, b)
    3 |     a, b = split(x, 3)
      |            ^
"""),
    ("unpack-not-a-list", NET.format(body='    a, b = x -> relu\n    output o = a'),
     """bad.cnn:3:12: error: cannot unpack a tensor 3x32x32 into 2 names (a, b); only a list unpacks
    3 |     a, b = x -> relu
      |            ^
"""),
    ("zeropad-crops-all-channels", NET.format(body='    output o = x -> zeropad(0, 0, 0, 0, -2, -1)'),
     """bad.cnn:3:21: error: zeropad would leave a 0x32x32 map
    3 |     output o = x -> zeropad(0, 0, 0, 0, -2, -1)
      |                     ^
note: input shape: 3x32x32
note: negative amounts crop; they must leave at least one channel, row and column
"""),
    ("pixel-shuffle-channels", NET.format(body='    output o = x -> pixel_shuffle(2)'),
     """bad.cnn:3:21: error: pixel_shuffle by 2 needs channels divisible by 4, got 3
    3 |     output o = x -> pixel_shuffle(2)
      |                     ^
note: input shape: 3x32x32
"""),
    ("groupnorm-groups", NET.format(body='    output o = x -> conv(10, 1) -> groupnorm(4)'),
     """bad.cnn:3:36: error: groupnorm groups (4) must divide the channels (10)
    3 |     output o = x -> conv(10, 1) -> groupnorm(4)
      |                                    ^
note: input shape: 10x32x32
"""),
    ("maxpool-dilation-too-wide", 'network n() {\n    x = input(3, 4, 4)\n    output o = x -> maxpool(3, dilation=2)\n}\n',
     """bad.cnn:3:21: error: maxpool kernel larger than its padded input: kernel 3 (dilation 2) spans 5, but the padded height is 4
    3 |     output o = x -> maxpool(3, dilation=2)
      |                     ^
note: input shape: 3x4x4
"""),
    ("log-domain", NET.format(body='    output o = x -> conv(int(log(0)), 1)'),
     """bad.cnn:3:30: error: log(): needs a positive number, got 0
    3 |     output o = x -> conv(int(log(0)), 1)
      |                              ^
"""),
    ("log-base", NET.format(body='    output o = x -> conv(int(log(8, 1)), 1)'),
     """bad.cnn:3:30: error: log(): base must be positive and not 1, got 1
    3 |     output o = x -> conv(int(log(8, 1)), 1)
      |                              ^
"""),
    ("exp-overflow", NET.format(body='    output o = x -> conv(int(exp(1000)), 1)'),
     """bad.cnn:3:30: error: exp(): number too large
    3 |     output o = x -> conv(int(exp(1000)), 1)
      |                              ^
"""),
    ("defaults-unknown-op", NET.format(body='    defaults batchnrom(eps=1e-3)\n    output o = x'),
     """bad.cnn:3:14: error: defaults: unknown op 'batchnrom'; did you mean 'batchnorm'?
    3 |     defaults batchnrom(eps=1e-3)
      |              ^
"""),
    ("defaults-unknown-argument", NET.format(body='    defaults bn(epsilon=1e-3)\n    output o = x'),
     """bad.cnn:3:17: error: bn has no argument 'epsilon'; did you mean 'eps'?
    3 |     defaults bn(epsilon=1e-3)
      |                 ^
note: signature: batchnorm(x, eps=1e-05, momentum=0.1)
"""),
    ("defaults-bad-value", NET.format(body='    defaults bn(eps=true)\n    output o = x'),
     """bad.cnn:3:17: error: 'eps' of bn must be a number, got true
    3 |     defaults bn(eps=true)
      |                 ^
"""),
    ("defaults-positional", NET.format(body='    defaults bn(1e-3)\n    output o = x'),
     """bad.cnn:3:17: error: defaults takes keyword arguments only, e.g. defaults bn(eps=1e-3)
    3 |     defaults bn(1e-3)
      |                 ^
"""),
    ("defaults-block", 'block b(x) { return x }\n' + NET.format(body='    defaults b(c=1)\n    output o = x'),
     """bad.cnn:4:14: error: defaults: 'b' is a block; defaults apply to ops
    4 |     defaults b(c=1)
      |              ^
"""),
    ("padding-same-unquoted", NET.format(body='    output o = x -> conv(8, 3, padding=same)'),
     """bad.cnn:3:40: error: unknown name 'same'; strings are quoted: padding="same"
    3 |     output o = x -> conv(8, 3, padding=same)
      |                                        ^
"""),
    ("no-unrelated-suggestion", 'network n(scale=2) {\n    x = input(3, 32, 32)\n    output o = upsample\n}\n',
     """bad.cnn:3:16: error: unknown name 'upsample'; 'upsample' is an op or block: call it, e.g. x -> upsample(...)
    3 |     output o = upsample
      |                ^
"""),
    ("as-underscore-on-op", NET.format(body='    output o = x -> conv(8, 3) as _'),
     """bad.cnn:3:35: error: `as _` applies to block calls (their contents are named in the caller's scope); conv is an op, whose instance always has a name
    3 |     output o = x -> conv(8, 3) as _
      |                                   ^
"""),
    ("as-underscore-on-group", NET.format(body='    output o = (x -> conv(8, 3)) as _'),
     """bad.cnn:3:37: error: `as _` applies to block calls (their contents are named in the caller's scope); a group adds a level by its name: leave out `( ) as` for none
    3 |     output o = (x -> conv(8, 3)) as _
      |                                     ^
"""),
    ("error-inside-flat-block", 'block stem(x) { return x -> conv(8, 3, groups=2) }\n' + NET.format(body='    output o = x -> stem as _'),
     """bad.cnn:1:29: error: groups (2) must divide the input channels (3)
    1 | block stem(x) { return x -> conv(8, 3, groups=2) }
      |                             ^
note: input shape 3x32x32
bad.cnn:4:21: note: in an instance of block 'stem' called `as _` (its contents named in the network), called here
"""),
    ("as-underscore-name-clash", 'block stem(x) { return x -> conv(8, 3) as conv1 }\n' + NET.format(body='    x = x -> conv(3, 1) as conv1\n    output o = x -> stem as _'),
     """bad.cnn:1:43: error: instance name 'conv1' is already used in this scope
    1 | block stem(x) { return x -> conv(8, 3) as conv1 }
      |                                           ^
bad.cnn:4:28: note: first used here
bad.cnn:5:21: note: in an instance of block 'stem' called `as _` (its contents named in the network), called here
"""),

]


@pytest.mark.parametrize("case,text,expected", CASES, ids=[c[0] for c in CASES])
def test_diagnostic(tmp_path, monkeypatch, capsys, case, text, expected):
    (tmp_path / "bad.cnn").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "bad.cnn"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == expected


def test_bad_set_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "n.cnn").write_text("network n(classes=10) {\n    output o = input(3, 8, 8)\n}\n")
    assert main(["check", "n.cnn", "--set", "clases=3"]) == 1
    assert capsys.readouterr().err == ("cnnc: error: --set: network 'n' has no parameter 'clases'; "
                                       "did you mean 'classes'? (its parameters: classes)\n")


@pytest.mark.parametrize("sets,message", [
    (["classes"], "--set expects NAME=VALUE, got 'classes'"),
    (["=3"], "--set expects NAME=VALUE, got '=3'"),
    (["cl asses=3"], "--set expects NAME=VALUE, got 'cl asses=3'"),
    (["classes=3", "classes=4"], "--set classes is given twice"),
    (["classes=" + "9" * 200], "--set classes: number of 200 digits is too long"),
], ids=["no-value", "no-name", "not-a-name", "repeated", "long-number"])
def test_set_misuse_is_a_usage_error(tmp_path, monkeypatch, capsys, sets, message):
    """A malformed or repeated --set is command-line misuse: usage and exit status 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "n.cnn").write_text("network n(classes=10) {\n    output o = input(3, 8, 8)\n}\n")
    with pytest.raises(SystemExit) as info:
        main(["check", "n.cnn"] + [a for s in sets for a in ("--set", s)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cnnc check") and err.endswith(f"cnnc check: error: {message}\n")


def test_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "nope.cnn"]) == 1
    assert capsys.readouterr().err == "cnnc: error: no such file: 'nope.cnn'\n"


@pytest.mark.parametrize("argv", [[], ["check"], ["frobnicate", "x.cnn"], ["summary", "x.cnn", "--depth", "0"],
                                  ["summary", "x.cnn", "--format", "xml"]])
def test_command_line_misuse_exits_2(argv):
    out = subprocess.run([sys.executable, "-m", "cnnc", *argv], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "usage: cnnc" in out.stderr


def test_errors_exit_1_without_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text(textwrap.dedent(CASES[0][1]))
    out = subprocess.run([sys.executable, "-m", "cnnc", "check", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"{bad}:3:5: error: unexpected 'output'")
    assert "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------
# Text: bytes that are not UTF-8, a byte order mark, line breaks, digits, control characters
# ---------------------------------------------------------------------------------------------
def _check_bytes(tmp_path, monkeypatch, capsys, data: bytes):
    (tmp_path / "bad.cnn").write_bytes(data)
    monkeypatch.chdir(tmp_path)
    status = main(["check", "bad.cnn"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# (case id, file bytes, expected stderr); every one exits 1 with nothing on stdout
TEXT_CASES = [
    # the byte that is not UTF-8, by line and column (the text before it decodes); never quoted
    ("not-utf8", b"network n() {\n    x = input(3, 8, 8)  # caf\xe9\n}\n",
     "bad.cnn:2:30: error: 'bad.cnn' is not UTF-8 text (byte 0xe9)\n"),
    ("not-utf8-first-line", b"\xff\xfenetwork",
     "bad.cnn:1:1: error: 'bad.cnn' is not UTF-8 text (byte 0xff)\n"),
    # a byte order mark is dropped: columns of the first line do not count it
    ("bom", b"\xef\xbb\xbfnetwork n() { $\n}\n",
     "bad.cnn:1:15: error: unexpected character '$'\n    1 | network n() { $\n      |               ^\n"),
    # CR and CRLF are line breaks for the lexer, the column and the quoted line alike
    ("cr", b"network n() {\r    x = input(3, 8, 8)\r    output o = x $\r}\r",
     "bad.cnn:3:18: error: unexpected character '$'\n    3 |     output o = x $\n      |                  ^\n"),
    ("crlf", b"network n() {\r\n    x = input(3, 8, 8)\r\n    output o = x $\r\n}\r\n",
     "bad.cnn:3:18: error: unexpected character '$'\n    3 |     output o = x $\n      |                  ^\n"),
    # form feed, U+0085 and U+2028 are not line breaks: line 3 is the line quoted
    ("separators", "network n() {\n    # a\u2028b\x85c\x0cd\n    output o = input(3, 8, 8) $\n}\n".encode(),
     "bad.cnn:3:31: error: unexpected character '$'\n    3 |     output o = input(3, 8, 8) $\n"
     "      |                               ^\n"),
    ("separator-as-character", "network n() {\n    output o =\u2028input(3, 8, 8)\n}\n".encode(),
     "bad.cnn:2:15: error: unexpected character '\\u2028'\n    2 |     output o =\\u2028input(3, 8, 8)\n"
     "      |               ^\n"),
    # only ASCII digits are numbers
    ("fullwidth-digit", "network n() {\n    output o = input(\uff13, 8, 8)\n}\n".encode(),
     "bad.cnn:2:22: error: unexpected character '\uff13'\n    2 |     output o = input(\uff13, 8, 8)\n"
     "      |                      ^\n"),
    ("arabic-indic-digit", "network n() {\n    output o = input(3, \u0668, 8)\n}\n".encode(),
     "bad.cnn:2:25: error: unexpected character '\u0668'\n    2 |     output o = input(3, \u0668, 8)\n"
     "      |                         ^\n"),
    # a control character: not spec text, never quoted (nor sent to the terminal raw)
    ("control-character", b"network n() {\n    x = \x1b[2J input(3, 8, 8)\n}\n",
     "bad.cnn:2:9: error: control character U+001B: a spec is text\n"),
    # a bidirectional override in a string is escaped in the message and in the quoted line
    ("bidi-in-message", "network n() {\n    output o = input(3, 8, 8) -> conv(\"\u202e\", 3)\n}\n".encode(),
     "bad.cnn:2:39: error: 'out' of conv must be an integer, got the string \"\\u202e\"\n"
     "    2 |     output o = input(3, 8, 8) -> conv(\"\\u202e\", 3)\n      |                                       ^\n"),
]


@pytest.mark.parametrize("case,data,expected", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_diagnostics(tmp_path, monkeypatch, capsys, case, data, expected):
    status, out, err = _check_bytes(tmp_path, monkeypatch, capsys, data)
    assert (status, out, err) == (1, "", expected)


def test_bom_and_any_line_break_check(tmp_path, monkeypatch, capsys):
    text = "network n() {\n    x = input(3, 8, 8)\n    output o = x -> relu\n}\n"
    for data in (b"\xef\xbb\xbf" + text.encode(), text.replace("\n", "\r").encode(),
                 text.replace("\n", "\r\n").encode()):
        assert _check_bytes(tmp_path, monkeypatch, capsys, data) == (0, "n: 2 layers, 0 parameters, 0 MACs (0)\n", "")


def test_set_values_take_ascii_digits_only():
    from cnnc.cli.common import parse_override

    assert parse_override("12") == 12 and parse_override("-1.5e3") == -1500.0
    assert parse_override("\u0663") == "\u0663" and parse_override("\uff11\uff12") == "\uff11\uff12"


def test_long_lines_are_quoted_around_the_column(tmp_path, monkeypatch, capsys):
    data = ("network n() {\n    x = input(3, 8, 8)" + " " * 5000 + "$\n}\n").encode()
    status, _, err = _check_bytes(tmp_path, monkeypatch, capsys, data)
    head, quoted, caret = err.splitlines()
    assert status == 1 and head == "bad.cnn:2:5023: error: unexpected character '$'"
    assert len(quoted) < 200 and quoted.endswith("$") and caret.index("^") == quoted.index("$")


# ---------------------------------------------------------------------------------------------
# Never exit status 3 (an internal error) where a located error belongs
# ---------------------------------------------------------------------------------------------
NEVER_INTERNAL = [
    ("huge-range", NET.format(body="    for i in range(99999999999999999999) { y = i }\n    output o = x"),
     "bad.cnn:3:20: error: integer too large (> 2^62)\n"),
    ("huge-set-like-literal", NET.format(body="    y = 1" + "0" * 200 + "\n    output o = x"),
     "bad.cnn:3:9: error: number literal of 201 characters is too long\n"),
    ("float-literal-too-large", NET.format(body="    y = 1e999\n    output o = x"),
     "bad.cnn:3:9: error: number too large\n"),
    ("nested-list-constant", "c = " + "[" * 450 + "1" + "]" * 450 + "\n" + NET.format(body="    output o = x"),
     "bad.cnn:1:"),
    ("scale-by-a-tiny-number", NET.format(body="    output o = x / 5e-324"),
     "bad.cnn:3:18: error: arithmetic gives inf\n"),
]


@pytest.mark.parametrize("case,text,expected", NEVER_INTERNAL, ids=[c[0] for c in NEVER_INTERNAL])
def test_located_errors_not_internal_ones(tmp_path, monkeypatch, capsys, case, text, expected):
    (tmp_path / "bad.cnn").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "bad.cnn"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(expected), err[:300]
    assert "internal error" not in err


def test_symlink_loop_import_is_located(tmp_path, monkeypatch, capsys):
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "bad.cnn").write_text('import "loop1"\n' + NET.format(body="    output o = x"))
    monkeypatch.chdir(tmp_path)
    assert main(["check", "bad.cnn"]) == 1
    assert capsys.readouterr().err.startswith("bad.cnn:1:1: error: cannot read 'loop1': Too many levels of "
                                              "symbolic links\n")


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_one_line_exit_1():
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "cnnc", "summary", str(ROOT / "specs" / "resnet50.cnn")],
                             stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert (out.returncode, out.stderr) == (1, "cnnc: error: cannot write to standard output: "
                                               "No space left on device\n")
