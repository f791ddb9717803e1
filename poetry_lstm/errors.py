"""User-facing messages: `raise PoetryError("what is wrong; what to do", kind="model_missing", mode=m)`.

Every error and every note beside a poem carries a `kind` and the `fields` its sentence was made
from, so a face that speaks another language (the page's Chinese, `page.zh_message`) words it from
those, never by reading the English. The CLI prints the English sentence; the page shows its
Chinese first, the English after. Anything else escaping the library is a bug, not a user mistake.
"""
from __future__ import annotations


class PoetryError(Exception):
    """A problem the user can fix: bad input, a missing file, an unreachable host.

    `kind` names the problem (`"line_length"`, `"model_missing"`, …; "error" when nothing more
    specific was given) and `fields` holds what the message names (`what`, `count`, `path`, …).
    """

    def __init__(self, message: str, kind: str = "error", **fields):
        super().__init__(message)
        self.kind, self.fields = kind, fields


class InputError(PoetryError):
    """Refused user input (exit code 2 on the CLI)."""


class Note(str):
    """A note beside a poem or an answer: the English sentence itself (it prints, compares and
    serialises as a plain string), with its `kind` and `fields` for other faces."""

    kind: str
    fields: dict

    def __new__(cls, message: str, kind: str, **fields) -> "Note":
        note = super().__new__(cls, message)
        note.kind, note.fields = kind, fields
        return note

    def __reduce__(self):  # Streamlit's cache pickles results: keep the kind across it
        return _note, (str(self), self.kind, self.fields)


def _note(message: str, kind: str, fields: dict) -> Note:
    return Note(message, kind, **fields)
