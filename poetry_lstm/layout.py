"""Where everything sits in a poem's slots: `layout.lines_of(text)`, `layout.slot(line, char)`.

A five-character quatrain `XXXXX，XXXXX。XXXXX，XXXXX。` fills 24 slots: line i (0–3) holds slots
6i … 6i+4 and its mark sits at 6i+5. A 七绝 fills 32 the same way, 8 a line. A `Shape` holds one
form's numbers (`FIVE`, `SEVEN`; `shape_for(7)`); the module's own names are FIVE's, which is what the
five-character code reads. The decoder, the training samples, the evaluation and the page all count
slots with this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MARKS_OF_LINES = "，。，。"  # the mark after each line


@dataclass(frozen=True)
class Shape:
    """A quatrain of `chars` characters a line: its slots, marks and line ends."""
    chars: int
    lines: int = 4
    stride: int = field(init=False)                 # a line and its mark
    slots: int = field(init=False)                  # the text of a poem
    marks: dict = field(init=False, compare=False)  # slot → the mark the form puts there
    line_starts: tuple = field(init=False)
    line_ends: tuple = field(init=False)            # line 1 may rhyme, 2 and 4 must
    # The network reads <s> then the slots: line 2's last character is its input step 1 + line_ends[1].
    # From the step after it on, the rhyme context feeds that character's 平仄 and groups (network, stepper).
    line_two_end_step: int = field(init=False)

    def __post_init__(self):
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 -- frozen
        put("stride", self.chars + 1)
        put("slots", self.lines * self.stride)
        put("line_starts", tuple(i * self.stride for i in range(self.lines)))
        put("line_ends", tuple(start + self.chars - 1 for start in self.line_starts))
        put("marks", {start + self.chars: MARKS_OF_LINES[i] for i, start in enumerate(self.line_starts)})
        put("line_two_end_step", 1 + self.line_ends[1])

    @property
    def name(self) -> str:
        return FORM_OF_CHARS[self.chars]

    @property
    def label(self) -> str:
        """What the form is called: 五绝 or 七绝."""
        return FORM_LABELS[self.name]

    def slot(self, line: int, char: int) -> int:
        """The slot of character `char` (from 0) of line `line` (from 0)."""
        return line * self.stride + char

    def line_of(self, pos: int) -> int:
        return pos // self.stride

    def char_of(self, pos: int) -> int:
        """The place of slot `pos` within its line: 0 to chars - 1 for a character, chars for the mark."""
        return pos % self.stride

    def line_slots(self, line: int) -> range:
        return range(line * self.stride, line * self.stride + self.chars)

    def lines_of(self, text: str) -> list[str]:
        """The four lines of a poem text of this shape."""
        return [text[start:start + self.chars] for start in self.line_starts]

    def reverse_poem(self, text: str) -> str:
        """The poem read from its end: last line first, each line's characters backwards, the marks where
        the form puts them. A backward model learns on these, so its last line scores p(line 1 | lines 2–4)."""
        lines = self.lines_of(text)
        return "".join(line[::-1] + self.marks[start + self.chars]
                       for line, start in zip(reversed(lines), self.line_starts))


FIVE, SEVEN = Shape(5), Shape(7)
SHAPES = {5: FIVE, 7: SEVEN}
FORMS = {"wujue": FIVE, "qijue": SEVEN}  # `--form`'s names
FORM_OF_CHARS = {5: "wujue", 7: "qijue"}
FORM_LABELS = {"wujue": "五绝", "qijue": "七绝"}


def shape_for(chars: int) -> Shape:
    """The shape of a quatrain of `chars` characters a line (5 or 7); ValueError for any other."""
    if chars not in SHAPES:
        raise ValueError(f"no quatrain of {chars} characters a line")
    return SHAPES[chars]


_BY_SLOTS = {s.slots: s for s in SHAPES.values()}


def shape_of_text(text) -> Shape | None:
    """The shape whose slot count is len(text) (a poem's text or slot list; 24: FIVE, 32: SEVEN), else None."""
    return _BY_SLOTS.get(len(text))


# FIVE's numbers under the names the five-character code has always read.
LINES, CHARS, STRIDE, SLOTS = FIVE.lines, FIVE.chars, FIVE.stride, FIVE.slots
MARKS = FIVE.marks
LINE_STARTS, LINE_ENDS = FIVE.line_starts, FIVE.line_ends
LINE_TWO_END_STEP = FIVE.line_two_end_step
slot, line_of, char_of, line_slots = FIVE.slot, FIVE.line_of, FIVE.char_of, FIVE.line_slots
lines_of, reverse_poem = FIVE.lines_of, FIVE.reverse_poem
