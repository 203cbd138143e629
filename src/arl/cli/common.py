"""What the ``arl-run`` commands share: exit codes, ``--store``, and saying what went wrong.

Imported whenever ``arl-run`` starts: click and arl's lightest modules only.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from arl.preflight import EXIT_CONFIG as EXIT_CONFIG
from arl.preflight import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from arl.store.location import DEFAULT_URL, URL_ENV_VAR

EXIT_FAILED = 1

store_option = click.option(
    "--store",
    "store",
    metavar="URL",
    default=None,
    help=f"SQLAlchemy URL of the store [default: ${URL_ENV_VAR}, else {DEFAULT_URL}].",
)


def say(text: str) -> None:
    """Print to stderr, with anything that is not printable escaped (see arl.terminal)."""
    from arl.terminal import printable

    click.echo(printable(text), err=True)


def fail(message: str) -> NoReturn:
    """Say what went wrong on stderr and exit 1: the end of every failing `arl-run db`
    and `arl-run results` command."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_FAILED)
