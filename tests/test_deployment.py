"""What can be checked here of the team deployment (no Docker engine runs on these machines)
and of `make run`'s environment."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))


def test_compose_has_the_shape_of_airflows_own_with_a_separate_warehouse():
    services = compose()["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis", "warehouse"} <= set(services)
    for name in AIRFLOW_SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        # one JWT secret for every component, and the execution API where the API server is
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        # what the DAGs need: the warehouse connection and the package on the path
        assert "@warehouse:5432/" in env["AIRFLOW_CONN_NEWS_WAREHOUSE"]
        assert env["PYTHONPATH"] == "/opt/airflow/include" and env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        mounts = {volume.split(":")[1] for volume in service["volumes"] if volume.startswith("./")}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts, name
        assert service["build"] == "."
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"] == "api-server" and commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor" and commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    # workers scale with --scale: no fixed name, no published port
    assert "container_name" not in services["airflow-worker"] and "ports" not in services["airflow-worker"]
    init = "\n".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in init and "airflow pools set steppewatch_http" in init
    assert "steppewatch db upgrade" in init
    assert services["warehouse"]["environment"]["POSTGRES_DB"] == "news"


def test_the_image_is_airflow_with_the_pinned_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert re.search(rf"^FROM apache/airflow:{re.escape(pinned)}-python3\.11$", dockerfile, re.M)
    assert "requirements.txt" in dockerfile and "PYTHONPATH=/opt/airflow/include" in dockerfile


def test_docker_compose_config_accepts_the_file_where_the_cli_runs(tmp_path):
    """`docker compose config` validates the file against Compose's schema; the machines here
    have no compose plugin, so there the YAML checks above are what stands."""
    docker = shutil.which("docker")
    available = docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    if not available:
        assert compose()["services"], "the YAML parses"
        return
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())
    done = subprocess.run([docker, "compose", "--env-file", str(env_file), "config", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_make_run_environment_points_airflow_at_the_project(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from airflow_local import airflow_env
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    env = airflow_env(tmp_path / "home", "127.0.0.1", 8080)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) <= 4
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"
    assert str(ROOT / "include") in env["PYTHONPATH"].split(":")
    # the embedded SQLite warehouse unless one is configured
    assert "AIRFLOW_CONN_NEWS_WAREHOUSE" not in env
