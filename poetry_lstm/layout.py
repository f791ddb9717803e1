"""Where everything sits in a poem's 24 slots: `layout.lines_of(text)`, `layout.slot(line, char)`.

`XXXXX，XXXXX。XXXXX，XXXXX。`: line i (0–3) holds slots 6i … 6i+4 and its mark sits at 6i+5. The
decoder, the training samples, the evaluation and the page all count slots with this module.
"""
from __future__ import annotations

LINES, CHARS = 4, 5          # a five-character quatrain
STRIDE = CHARS + 1           # a line and its mark
SLOTS = LINES * STRIDE       # 24: the text of a poem
MARKS = {5: "，", 11: "。", 17: "，", 23: "。"}  # slot → the mark the form puts there
LINE_STARTS = tuple(i * STRIDE for i in range(LINES))           # 0, 6, 12, 18
LINE_ENDS = tuple(start + CHARS - 1 for start in LINE_STARTS)   # 4, 10, 16, 22: line 1 may rhyme, 2 and 4 must
# The network reads <s> then the 24 slots: line 2's last character is its input step 11. From the
# step after it on, the rhyme context feeds that character's 平仄 and groups (network, stepper).
LINE_TWO_END_STEP = 1 + LINE_ENDS[1]


def slot(line: int, char: int) -> int:
    """The slot of character `char` (from 0) of line `line` (from 0)."""
    return line * STRIDE + char


def line_of(pos: int) -> int:
    return pos // STRIDE


def char_of(pos: int) -> int:
    """The place of slot `pos` within its line: 0–4 for a character, 5 for the mark."""
    return pos % STRIDE


def line_slots(line: int) -> range:
    return range(line * STRIDE, line * STRIDE + CHARS)


def lines_of(text: str) -> list[str]:
    """The four lines of a 24-character poem text."""
    return [text[start:start + CHARS] for start in LINE_STARTS]


def reverse_poem(text: str) -> str:
    """The poem read from its end: last line first, each line's characters backwards, the marks where
    the form puts them. A backward model learns on these, so its last line scores p(line 1 | lines 2–4)."""
    lines = lines_of(text)
    return "".join(line[::-1] + MARKS[start + CHARS] for line, start in zip(reversed(lines), LINE_STARTS))
