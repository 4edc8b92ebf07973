"""steppewatch's pages in the Airflow UI: Browse → Central Asia mentions.

Mounts the analysts' app (:mod:`steppewatch.web`) at ``/steppewatch`` on the API server;
every route requires an authenticated Airflow user (a request without one gets 401).
"""

from __future__ import annotations

from fastapi import Depends

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from steppewatch.web import create_app

app = create_app(dependencies=[Depends(requires_authenticated())], root="/steppewatch")


class SteppewatchPlugin(AirflowPlugin):
    name = "steppewatch"
    fastapi_apps = [{"app": app, "url_prefix": "/steppewatch", "name": "steppewatch: Central Asia mentions"}]
    external_views = [
        {"name": "Central Asia mentions", "href": "/steppewatch/mentions", "destination": "nav",
         "category": "browse", "url_route": "central-asia-mentions"},
    ]
