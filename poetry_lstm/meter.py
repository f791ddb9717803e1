"""The rules of a five-character line's 平仄, on tone patterns alone: `verdict("PPZPZ", "b")`.

One engine for the checker and the generator. The checker (`check.py`) reads a poem's characters
into patterns and asks for a verdict; the generator (`prosody.allowed_tones`) writes only the
patterns this module accepts without a fault. A pattern is five letters, P for 平 and Z for 仄.

Line types (EVALUATION.md): a 仄仄平平仄, A 仄仄仄平平, b 平平平仄仄, B 平平仄仄平; a form is four of them.
Places 2 and 4 keep their tone (二四分明), place 5 belongs to the rhyme, places 1 and 3 are free
(一三不论) unless that makes one of the faults below. What the rules accept beyond the plain
variants is a licence, which the checker names and the generator uses only when asked:

- 半拗 (a: 仄仄仄平仄), 特拗 (b: 平平仄平仄, its first place 平) and 孤平拗救 (B: 仄平平仄平) rescue
  themselves (本句自救);
- 对句相救: an a line with 仄 at place 4 (大拗: 仄仄平仄仄) is rescued by 平 at place 3 of the B line
  that answers it; without that rescue it is a fault.

Two rule sets:
- "strict" (the default): the licences above are accepted and named;
- "lenient": also the licences poets dispute, 三仄尾 (平平仄仄仄) and 仄平仄平仄 (couyun faults both;
  the generator wrote them until the poet's desk).
The generator writes plain lines only unless asked for licences (`variants(..., licences=True)`).

A seven-character line (七言) is a five-character one after a two-character head whose second place
has the other tone of the five's second (二四六分明): a 平平仄仄平平仄, A 平平仄仄仄平平, b 仄仄平平平仄仄,
B 仄仄平平仄仄平. Its place 1 is free; its places 3–7 are judged as the five's places 1–5, so 孤平, 三平尾
and the licences sit at their 七言 places (孤平 of 仄仄平平仄仄平 is 仄仄仄平仄仄平, place 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product

BASE = {"a": "ZZPPZ", "A": "ZZZPP", "b": "PPPZZ", "B": "PPZZP"}
TYPES = tuple(BASE)
_OTHER = {"P": "Z", "Z": "P"}
BASE7 = {t: _OTHER[p[0]] + _OTHER[p[1]] + p for t, p in BASE.items()}  # the head has the other tones
HEAD = 2  # a seven-character line's places before its five-character tail
RESCUE = "B+"  # a B line answering a 大拗 a line: 平 at place 3, so it rescues it (对句相救)
RULE_SETS = ("strict", "lenient")
DISPUTED = ("三仄尾", "仄平仄平仄")  # licences only the lenient rules accept

# Kinds of fault: (id, Chinese name). The id is what JSON carries; the name is what poets call it.
FAULTS = {
    "tone": "平仄不合",
    "lost_contrast": "失对",    # place 2 has the tone of the line it answers
    "lost_link": "失粘",        # place 2 of line 3 differs from line 2's
    "lone_ping": "孤平",        # 仄平仄仄平: place 2 is the only 平 before the rhyme
    "three_ping_tail": "三平尾",  # 平平平 at the end
    "three_ze_tail": "三仄尾",   # 仄仄仄 at the end of a b line
    "unrescued_ao": "大拗未救",  # an a line's place 4 is 仄 and the next line does not rescue it
}


@dataclass(frozen=True)
class Verdict:
    faults: tuple[tuple[int, str], ...]  # (place from 1, fault id), in place order
    licence: str | None = None           # the licence the line takes, if any
    chars: int = 5                       # the line's length

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def cost(self) -> int:
        """How badly the line breaks its type: the even places and the last weigh most."""
        return sum(WEIGHTS_OF[self.chars][place - 1] for place, _ in self.faults)


WEIGHTS = (1, 3, 1, 3, 4)
WEIGHTS7 = (1, 3) + WEIGHTS
WEIGHTS_OF = {5: WEIGHTS, 7: WEIGHTS7}  # by the line's length


def verdict(pattern: str, line_type: str, rules: str = "strict", rescued: bool = False) -> Verdict:
    """What the rules say of one line of `line_type` with tones `pattern` (P/Z only; five or seven letters).

    `rescued`: the line is an a line answered by a B line with 平 at the third place from its end
    (对句相救 holds); "lenient" `rules` also accept the DISPUTED licences.
    """
    if len(pattern) == 5 + HEAD:  # the head's place 2 against the tail's, then the tail as a five
        kind = "B" if line_type == RESCUE else line_type
        head = [(2, "tone")] if pattern[1] != BASE7[kind][1] else []
        tail = verdict(pattern[HEAD:], line_type, rules, rescued)
        return Verdict(tuple(head + [(place + HEAD, fault) for place, fault in tail.faults]), tail.licence, 7)
    kind = "B" if line_type == RESCUE else line_type
    base, p = BASE[kind], pattern
    faults: list[tuple[int, str]] = []
    licence = None
    if p[1] != base[1]:
        faults.append((2, "lost_contrast"))
    if p[4] != base[4]:
        faults.append((5, "tone"))
    if kind == "A":  # 中仄仄平平
        if p[3] != "P":
            faults.append((4, "tone"))
        elif p[2] == "P" and p[4] == "P":
            faults.append((3, "three_ping_tail"))
    elif kind == "B":  # 平平仄仄平
        if p[3] != "Z":
            faults.append((4, "tone"))
        if p[0] == "Z" and p[2] == "Z":
            faults.append((1, "lone_ping"))
        elif p[0] == "Z":
            licence = "孤平拗救"
        if line_type == RESCUE and p[2] != "P":
            faults.append((3, "unrescued_ao"))
    elif kind == "a":  # 仄仄平平仄
        if p[3] == "Z":
            if rescued:
                licence = "对句相救"
            else:
                faults.append((4, "unrescued_ao"))
        elif p[2] == "Z":
            licence = "半拗"
    else:  # b, 平平平仄仄
        if p[3] == "P":
            if p[2] == "Z" and p[0] == "P":
                licence = "特拗"
            elif p[2] == "Z" and rules == "lenient":
                licence = "仄平仄平仄"
            elif p[2] == "Z":
                faults.append((1, "tone"))  # 仄平仄平仄: 特拗 wants 平 first
            else:
                faults.append((4, "tone"))
        elif p[2] == "Z":
            if p[0] == "P" and rules == "lenient":
                licence = "三仄尾"
            else:
                faults.append((3, "three_ze_tail"))
    return Verdict(tuple(sorted(faults)), licence)


@lru_cache(maxsize=None)
def variants(line_type: str, rules: str = "strict", licences: bool = False, chars: int = 5) -> tuple[str, ...]:
    """The patterns of a `line_type` line of `chars` characters that `rules` accept: plain ones only, or
    with `licences` also the licensed ones. A 大拗 a line needs the next line's help, so it is never among
    them (the generator writes none; a given one makes its next line `RESCUE`)."""
    if rules not in RULE_SETS:
        raise ValueError(f"unknown rule set {rules!r}; one of {RULE_SETS}")
    patterns = ("".join(letters) for letters in product("PZ", repeat=chars))
    return tuple(p for p in patterns if (v := verdict(p, line_type, rules)).ok and (licences or v.licence is None))


def needs_rescue(pattern: str) -> bool:
    """An a line with 仄 at its next-to-last place (大拗): the B line after it must have 平 at its third
    place from the end (places 4 and 3 of a five-character line, 6 and 5 of a seven)."""
    return pattern[-2] == "Z"
