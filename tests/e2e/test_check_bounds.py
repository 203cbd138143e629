"""The check before a run is bounded and says what happened: a user's module that exits,
dies or hangs at import, Ctrl-C while checking, ids an environment does not provide (run
probes), and names with escape sequences (printed escaped)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from arl.testing import poll_for
from experiment_files import write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

MODULES = {
    # The checking child imports these from arl-run's working directory (python -m puts it on the path).
    "arl_e2e_exits": "import sys\nsys.exit(3)\n",
    "arl_e2e_dies": "import os\nos._exit(7)\n",
    "arl_e2e_hangs": "import pathlib, time\npathlib.Path('importing').touch()\ntime.sleep(60)\n",
}


@pytest.fixture
def modules(arl_run) -> Path:
    for name, text in MODULES.items():
        (arl_run.tmp / f"{name}.py").write_text(text)
    return arl_run.tmp


def test_a_module_that_exits_dies_or_hangs_at_import_is_reported_at_its_class(arl_run, modules) -> None:
    exits = write(arl_run.tmp, uid="exits", phase='"\\e[2Jtrain"', brain="arl_e2e_exits:Brain")
    dies = write(arl_run.tmp, uid="dies", brain="arl_e2e_dies:Brain")
    done = arl_run.run("check", exits, dies)
    assert done.returncode == 2
    allowed = "use letters, digits, '_', '-' and '.' (not first), at most 100 characters"
    assert done.stderr.splitlines() == [
        # An escape sequence in a name is printed escaped, never sent to the terminal.
        f"error: {exits}:4:5: schedule.0.\\x1b[2Jtrain: phase name '\\x1b[2Jtrain' contains '\\x1b', '['; {allowed}",
        f"error: {exits}:12:25: schedule.0.\\x1b[2Jtrain.agents.0.brain.name: importing module 'arl_e2e_exits' "
        "called sys.exit(3); a module must not exit when imported",
        f"error: {dies}:12:25: schedule.0.train.agents.0.brain.name: importing module 'arl_e2e_dies' ended the "
        "check: the checking process exited with code 7",
        "Nothing was run.",
    ]
    hangs = write(arl_run.tmp, uid="hangs", brain="arl_e2e_hangs:Brain")
    started = time.monotonic()
    done = arl_run.run("check", "--check-timeout", "1", hangs)
    assert done.returncode == 2
    assert time.monotonic() - started < 20
    assert done.stderr.splitlines() == [
        f"error: {hangs}:12:25: schedule.0.train.agents.0.brain.name: importing module 'arl_e2e_hangs' took more "
        "than 1 s and was stopped",
        "The check is bounded: nothing was run; if it needs longer, give --check-timeout SECONDS.",
    ]


def test_ctrl_c_while_checking_says_so_exits_130_and_creates_nothing(arl_run, modules, no_leaks) -> None:
    hangs = write(arl_run.tmp, uid="hangs", brain="arl_e2e_hangs:Brain")
    for command in (["run"], ["check"]):
        proc = arl_run.start(*command, hangs) if command == ["run"] else _start_check(arl_run, hangs)
        poll_for((arl_run.tmp / "importing").exists, timeout=20, what="the checking child to import the module")
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole foreground group
        _, err = proc.communicate(timeout=20)
        assert (proc.returncode, err) == (130, "interrupted while checking; nothing was run.\n")
        (arl_run.tmp / "importing").unlink()
        assert not [p for p in psutil.process_iter(["cmdline"]) if hangs in (p.info["cmdline"] or [])]
    made = [p.name for p in arl_run.tmp.iterdir() if p.suffix != ".py" and p.name != "__pycache__"]
    assert made == ["hangs.yml"]  # no store, no checkpoint folder


def _start_check(arl_run, file: str):
    return arl_run.start("check", file, checkpoints=False)


def test_run_checks_sensor_and_actuator_ids_against_the_environment_before_it_starts(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp, env_params="{sensors: 3, actuators: 4}")
    done = arl_run.run(file)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {file}:21:29: schedule.0.train.agents.1.sensors.1: environment 'env' provides no sensor 's3' "
        "(its sensors: 's0', 's1', 's2')",
        "1 problem found; nothing was run.",
    ]
    assert not arl_run.db.exists()  # nothing started, and a wrong file creates no store
    assert arl_run.run(file, "--no-probe", "--dry-run").returncode == 0  # a check without the probe passes
