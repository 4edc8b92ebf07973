"""DAG parse time: how long Airflow's DAG processor spends on the dags folder.

    python -m bench.dags [--repeat N]

Imports Airflow once, then parses dags/ with a fresh DagBag ``--repeat`` times (after one
warm-up) and reports the best and the median, in a scratch AIRFLOW_HOME. The DAG files
import only Airflow and read the sources file: no network, no database (tests/test_dags.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="steppewatch-bench-airflow-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    import_seconds = time.perf_counter() - started
    DagBag(dag_folder=str(ROOT / "dags"))
    times = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        bag = DagBag(dag_folder=str(ROOT / "dags"))
        times.append(time.perf_counter() - began)
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}")
        return 1
    best, median = min(times), statistics.median(times)
    flag = "ok" if median < TARGET_SECONDS else "ABOVE TARGET"
    print(f"dags folder ({len(bag.dags)} DAGs): parse best {best * 1000:.0f} ms, median {median * 1000:.0f} ms "
          f"over {args.repeat} (target < {TARGET_SECONDS:.0f} s: {flag}); importing Airflow itself took "
          f"{import_seconds:.1f} s once")
    out = ROOT / "bench-results" / "dags.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"dags": len(bag.dags), "best_seconds": best, "median_seconds": median,
                               "airflow_import_seconds": import_seconds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
