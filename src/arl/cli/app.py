"""The ``arl-run`` group: its commands, and ``arl-run FILE`` as short for ``arl-run run FILE``."""

from __future__ import annotations

import os

import click

import arl
from arl.cli.ctl import ctl
from arl.cli.db import db
from arl.cli.results import results_group
from arl.cli.runs import check, run, schema


class DefaultToRun(click.Group):
    """A group where an unknown first word that is not an option means ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        words = [a for a in args if not a.startswith("-")]
        if words and words[0] not in self.commands and not {"--help", "-h", "--version"} & set(args):
            args = ["run", *args]  # arl-run [run options] FILE... (also: arl-run -v a.yml)
        return super().parse_args(ctx, args)


@click.group(cls=DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(arl.__version__, prog_name="arl-run")
def main() -> None:
    """Run multi-agent reinforcement-learning experiments, every step stored.

    \b
    arl-run experiments/dummy.yml          run an experiment file
    arl-run run a.yml b.yml --parallel 2   run several side by side
    """
    # Before anything imports numpy: one BLAS thread a process (see arl.proc.forkserver).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


for command in (run, check, schema, results_group, db, ctl):
    main.add_command(command)
