"""Text from users is printed with what is not printable escaped."""

from __future__ import annotations

from arl.terminal import printable


def test_control_characters_and_escape_sequences_are_escaped_and_the_rest_kept() -> None:
    assert printable("phase_0 Zürich ünïcödé") == "phase_0 Zürich ünïcödé"
    assert printable("\x1b[2J\x1b]0;owned\x07") == "\\x1b[2J\\x1b]0;owned\\x07"
    assert printable("a\nb\rc\td\x00") == "a\\x0ab\\x0dc\\x09d\\x00"
    assert printable("evil\u202egnp.exe \u00a0 \U000e0041") == "evil\\u202egnp.exe \\xa0 \\U000e0041"


def test_console_log_lines_escape_users_text_and_keep_their_line_breaks() -> None:
    import logging

    from arl.terminal import PrintableFormatter

    record = logging.LogRecord(
        "arl.governor", logging.ERROR, __file__, 1, "agent %s crashed:\n%s", ("\x1b[31mred", "Traceback\x07"), None
    )
    shown = PrintableFormatter("%(levelname)s %(message)s").format(record)
    assert shown == "ERROR agent \\x1b[31mred crashed:\nTraceback\\x07"
