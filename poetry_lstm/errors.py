"""User-facing errors: `raise PoetryError("what is wrong; what to do")`.

The CLI turns these into one-sentence `click.ClickException`s; the page shows them beside the box.
Anything else escaping is a bug, not a user mistake.
"""


class PoetryError(Exception):
    """A problem the user can fix: bad input, a missing file, an unreachable host."""


class InputError(PoetryError):
    """Refused user input (exit code 2 on the CLI)."""
