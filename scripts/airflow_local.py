"""Run Airflow for steppewatch on this machine: what `make run` starts.

    python scripts/airflow_local.py [--host 127.0.0.1] [--port 8080] [--home airflow_home]

Uses a project-local AIRFLOW_HOME, points the DAG and plugin folders at the project, keeps
the embedded SQLite warehouse unless AIRFLOW_CONN_NEWS_WAREHOUSE is set, creates the HTTP
pool, unpauses the DAGs, and runs `airflow standalone` (scheduler, DAG processor, triggerer
and API server with the UI) with a small parallelism. Ctrl-C, or SIGINT/SIGTERM to this
process, stops every process it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POOL = ("steppewatch_http", "4", "HTTP work of steppewatch: feeds, sitemaps and pages")
DAGS = ("steppewatch_daily", "steppewatch_retag")


def airflow_env(home: Path, host: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # a laptop: a handful of task processes, so that extraction and tagging do not thrash
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": env.get("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG", "4"),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{host}:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{host}:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": env.get("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "30"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "include"), env.get("PYTHONPATH")) if p),
        "STEPPEWATCH_DATA_DIR": env.get("STEPPEWATCH_DATA_DIR", str(ROOT / "data")),
    })
    return env


def _airflow(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["airflow", *args], env=env, check=check, capture_output=True, text=True)


def _api_up(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/api/v2/version", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _unpause_when_parsed(env: dict[str, str], stop: threading.Event) -> None:
    """New DAGs start unpaused (see the environment); this also unpauses ones paused earlier."""
    pending = set(DAGS)
    deadline = time.monotonic() + 300
    while pending and not stop.is_set() and time.monotonic() < deadline:
        for dag_id in sorted(pending):
            if _airflow(env, "dags", "unpause", dag_id, check=False).returncode == 0:
                pending.discard(dag_id)
        stop.wait(5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--home", default=str(ROOT / "airflow_home"), help="AIRFLOW_HOME (default: ./airflow_home)")
    args = parser.parse_args(argv)
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(home, args.host, args.port)
    base = f"http://{args.host}:{args.port}"

    print(f"steppewatch: AIRFLOW_HOME={home}", flush=True)
    warehouse = env.get("AIRFLOW_CONN_NEWS_WAREHOUSE") or f"sqlite:///{Path(env['STEPPEWATCH_DATA_DIR']) / 'warehouse.db'}"
    print(f"steppewatch: warehouse {warehouse.split('@')[-1]}", flush=True)
    _airflow(env, "db", "migrate")
    _airflow(env, "pools", "set", *POOL)

    def reset_sigint() -> None:
        # a process started in the background inherits SIGINT ignored; standalone stops on SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    child = subprocess.Popen(["airflow", "standalone"], env=env, start_new_session=True, preexec_fn=reset_sigint)
    stopping = threading.Event()

    def stop(*_signal) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=_unpause_when_parsed, args=(env, stopping), daemon=True).start()

    announced = False
    while child.poll() is None and not stopping.is_set():
        if not announced and _api_up(base):
            password_file = home / "simple_auth_manager_passwords.json.generated"
            print(f"\nsteppewatch: Airflow is up at {base}/  user: admin  password: in {password_file}"
                  f"\nsteppewatch: Ctrl-C stops Airflow and everything it started\n", flush=True)
            announced = True
        stopping.wait(1)

    if child.poll() is None:
        print("steppewatch: stopping Airflow", flush=True)
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
    # whatever the components left behind in their process group goes too
    try:
        os.killpg(child.pid, signal.SIGTERM)
        time.sleep(1)
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    print("steppewatch: stopped", flush=True)
    return 0 if stopping.is_set() else (child.returncode or 0)


if __name__ == "__main__":
    sys.exit(main())
