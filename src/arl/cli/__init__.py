"""``arl-run``: the command line, a module per command group.

:mod:`arl.cli.app` is the group (``arl-run FILE`` is short for ``arl-run run FILE``),
:mod:`arl.cli.runs` runs and checks experiment files, :mod:`arl.cli.results` reads the
store back, :mod:`arl.cli.db` keeps its schema; :mod:`arl.cli.common` holds their exit
codes and ``--store``. Each module imports only click and arl's lightest modules (and
:mod:`arl.preflight`, whose defaults ``run`` and ``check`` show): what a command needs
comes in when it runs.
"""

from arl.cli.app import main

__all__ = ["main"]
