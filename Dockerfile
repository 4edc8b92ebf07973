# The steppewatch Airflow image: Airflow 3.3 with steppewatch's pinned dependencies.
# docker-compose.yaml builds it for every Airflow component; the DAGs, plugins and the package
# itself (include/) are mounted from the checkout, so a `git pull` needs no rebuild.
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt /tmp/steppewatch-requirements.txt
RUN pip install --no-cache-dir -r /tmp/steppewatch-requirements.txt

ENV PYTHONPATH=/opt/airflow/include \
    STEPPEWATCH_SOURCES=/opt/airflow/include/sources.yaml \
    STEPPEWATCH_DATA_DIR=/opt/airflow/data
