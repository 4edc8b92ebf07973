# The steppewatch image: the package and its pinned dependencies.
FROM python:3.11-slim

WORKDIR /opt/steppewatch
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md ./
COPY include ./include
RUN pip install --no-cache-dir --no-deps .

ENV STEPPEWATCH_SOURCES=/opt/steppewatch/include/sources.yaml \
    STEPPEWATCH_DATA_DIR=/var/lib/steppewatch
ENTRYPOINT ["steppewatch"]
CMD ["run"]
