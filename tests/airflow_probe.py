"""Runs Airflow in a process of its own for the DAG tests (Airflow's configuration and
database session are process-wide), and prints what it saw as one JSON line.

    python tests/airflow_probe.py parse      # DagBag of the dags folder
    python tests/airflow_probe.py test ISO   # dag.test() of steppewatch_daily at that logical date

The environment (AIRFLOW_HOME, the dags folder, the warehouse, the sources) comes from the test.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime


def parse() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "sqlite3.connect":
            opened.append(str(args[0]))

    sys.addaudithook(audit)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "tasks": sorted(t.task_id for t in dag.tasks),
            "doc_md": dag.doc_md or "",
            "timetable": type(dag.timetable).__name__,
            "timezone": str(getattr(dag.timetable, "timezone", "")),
            "expression": str(getattr(dag.timetable, "expression", "")),
            "params": dag.params.dump(),
            "pools": sorted({t.pool for t in dag.tasks}),
            "timeouts": {t.task_id: t.execution_timeout.total_seconds() if t.execution_timeout else None
                         for t in dag.tasks},
            "retries": {t.task_id: t.retries for t in dag.tasks},
        }
    invalid = []
    if "steppewatch_daily" in bag.dags:
        from airflow.sdk.definitions.param import ParamsDict

        for bad in ({"max_items_per_source": 0}, {"sources": ["No Such Source"]}, {"reprocess": "maybe"}):
            params = ParamsDict(bag.dags["steppewatch_daily"].params)
            try:
                for key, value in bad.items():
                    params[key] = value
                params.validate()
            except Exception as err:  # noqa: BLE001 - the refusal is what the test wants
                invalid.append(f"{bad}: {err.__class__.__name__}")
    return {"import_errors": bag.import_errors, "dags": dags, "sqlite_opened": opened, "refused": invalid}


def dag_test(logical_date: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool
    from airflow.utils.db import initdb

    initdb()
    Pool.create_or_update_pool("steppewatch_http", 4, "HTTP work of steppewatch", include_deferred=False)
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["steppewatch_daily"]
    run = dag.test(logical_date=datetime.fromisoformat(logical_date))
    tasks = []
    for ti in run.get_task_instances():
        tasks.append({"task_id": ti.task_id, "map_index": ti.map_index, "label": ti.rendered_map_index,
                      "state": str(ti.state.value if hasattr(ti.state, "value") else ti.state),
                      "try_number": ti.try_number})
    return {"state": str(run.state), "run_id": run.run_id, "tasks": tasks,
            "data_interval": [run.data_interval_start.isoformat(), run.data_interval_end.isoformat()]}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = parse() if mode == "parse" else dag_test(sys.argv[2])
    print("PROBE " + json.dumps(result, default=str))
