"""Text from users (names, messages of their exceptions, file names) made safe to print.

An escape sequence in an agent's name would otherwise reach the terminal raw: it can
recolour, retitle or rewrite what the user reads. Everything arl-run prints from such
text goes through :func:`printable`.
"""

from __future__ import annotations

import logging


def printable(text: str) -> str:
    """``text`` with every character that is not printable (control characters, escape
    sequences' ESC, line and bidi controls, odd spaces) written as a Python escape
    (``\\x1b``, ``\\u202e``); printable text, accented letters included, is unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable_lines(text: str) -> str:
    """:func:`printable` line by line: the line breaks of a message or a traceback stay."""
    return "\n".join(printable(line) for line in text.split("\n"))


class PrintableFormatter(logging.Formatter):
    """A log formatter for the console: each line as :func:`printable` makes it. Log
    messages carry users' text too (their exceptions' messages, their components' log
    lines, uids with swept values)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(super().format(record))
