"""steppewatch: terrorism and violent extremism linked to Central Asia, from think-tank and news feeds.

The public API is small and keyword-rich; everything is importable without Airflow.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
