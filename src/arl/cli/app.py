"""The ``arl-run`` group: its commands, and ``arl-run FILE`` as short for ``arl-run run FILE``."""

from __future__ import annotations

import difflib
import os

import click

import arl
from arl.cli.ctl import ctl
from arl.cli.dashboard import dashboard
from arl.cli.db import db
from arl.cli.results import results_group
from arl.cli.runs import check, run, schema


class DefaultToRun(click.Group):
    """A group where an unknown first word that is not an option means ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        words = [a for a in args if not a.startswith("-")]
        if words and words[0] not in self.commands and not {"--help", "-h", "--version"} & set(args):
            self._refuse_typo(words[0])
            args = ["run", *args]  # arl-run [run options] FILE... (also: arl-run -v a.yml)
        return super().parse_args(ctx, args)

    def _refuse_typo(self, word: str) -> None:
        """A first word that is no file but nearly a command's name is that command
        mistyped (``arl-run chekc a.yml``), not a file to run: say which one was meant."""
        if os.path.exists(word) or word.endswith((".yml", ".yaml")):
            return
        near = difflib.get_close_matches(word, list(self.commands), n=1, cutoff=0.6)
        if near:
            raise click.UsageError(f"no command {word!r} (nor a file of that name); did you mean {near[0]!r}?")


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


for command in (run, check, schema, results_group, db, ctl, dashboard):
    main.add_command(command)
