"""Settings read from the environment in one place, with defaults.

Every knob the pipeline has is a field of :class:`Settings`; :func:`load_settings`
reads them from ``os.environ`` so that the CLI, the Airflow tasks and the tests
all see the same configuration.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

LOGGER = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
# In a checkout the package lives in <root>/include/steppewatch.
_CHECKOUT_ROOT = PACKAGE_DIR.parent.parent

ENV_SOURCES = "STEPPEWATCH_SOURCES"
ENV_WAREHOUSE = "AIRFLOW_CONN_NEWS_WAREHOUSE"
ENV_ALLOW_PRIVATE = "STEPPEWATCH_ALLOW_PRIVATE_NETWORKS"
ENV_DATA_DIR = "STEPPEWATCH_DATA_DIR"

DEFAULT_CONTACT_URL = "https://github.com/steppewatch/steppewatch"


def project_root() -> Path:
    """The checkout the package runs from, or the working directory when installed elsewhere."""
    if (_CHECKOUT_ROOT / "include" / "sources.yaml").exists():
        return _CHECKOUT_ROOT
    return Path.cwd()


def default_sources_path() -> Path:
    """``include/sources.yaml`` of the checkout (the file ships inside the package too)."""
    in_checkout = _CHECKOUT_ROOT / "include" / "sources.yaml"
    return in_checkout if in_checkout.exists() else PACKAGE_DIR / "sources.yaml"


class ConfigError(ValueError):
    """A setting or the sources file is unusable; the run cannot start."""


@dataclass(frozen=True)
class NetworkPolicy:
    """Which non-public addresses may be fetched.

    ``allow_all`` comes from ``STEPPEWATCH_ALLOW_PRIVATE_NETWORKS=1``; a comma-separated
    list of networks (``127.0.0.1/32,10.0.0.0/8``) allows only those.
    """

    allow_all: bool = False
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_value(cls, value: str | None) -> NetworkPolicy:
        value = (value or "").strip()
        if value.lower() in {"", "0", "false", "no", "off"}:
            return cls()
        if value.lower() in {"1", "true", "yes", "on"}:
            return cls(allow_all=True)
        networks = []
        for part in value.split(","):
            part = part.strip()
            if part:
                try:
                    networks.append(ipaddress.ip_network(part, strict=False))
                except ValueError as err:
                    raise ConfigError(f"{ENV_ALLOW_PRIVATE}: {part!r} is not a network ({err})") from err
        return cls(allowed_networks=tuple(networks))

    def permits(self, address: str) -> bool:
        """True when ``address`` is public or explicitly allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_global and not ip.is_multicast:
            return True
        if self.allow_all:
            return True
        return any(ip in net for net in self.allowed_networks)


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a number") from err


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not an integer") from err


@dataclass(frozen=True)
class HttpSettings:
    """Politeness and safety limits of the one HTTP layer."""

    user_agent: str = f"steppewatch/0.1 (+{DEFAULT_CONTACT_URL})"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_redirects: int = 5
    max_body_bytes: int = 10 * 1024 * 1024
    retries: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 120.0
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    max_crawl_delay: float = 10.0
    respect_robots: bool = True
    network_policy: NetworkPolicy = field(default_factory=NetworkPolicy)


@dataclass(frozen=True)
class Settings:
    """Everything a pass needs to know that is not in the sources file."""

    sources_path: Path
    warehouse_url: str
    data_dir: Path
    http: HttpSettings
    source_workers: int = 4
    extract_workers: int = 1
    batch_size: int = 50
    max_items_per_source: int = 200
    max_fetch_attempts: int = 5
    retry_backlog_days: int = 7
    # measured on the corpus (README, "Extraction"): higher F1, no gallery captions as text
    favor_precision: bool = True

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read :class:`Settings` from the environment (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get(ENV_DATA_DIR) or project_root() / "data")
    sources_path = Path(env.get(ENV_SOURCES) or default_sources_path())
    warehouse_url = env.get(ENV_WAREHOUSE) or f"sqlite:///{(data_dir / 'warehouse.db').resolve()}"
    contact = env.get("STEPPEWATCH_CONTACT_URL") or DEFAULT_CONTACT_URL
    http = HttpSettings(
        user_agent=env.get("STEPPEWATCH_USER_AGENT") or f"steppewatch/0.1 (+{contact})",
        connect_timeout=_env_float(env, "STEPPEWATCH_CONNECT_TIMEOUT", 10.0),
        read_timeout=_env_float(env, "STEPPEWATCH_READ_TIMEOUT", 30.0),
        max_redirects=_env_int(env, "STEPPEWATCH_MAX_REDIRECTS", 5),
        max_body_bytes=_env_int(env, "STEPPEWATCH_MAX_BODY_BYTES", 10 * 1024 * 1024),
        retries=_env_int(env, "STEPPEWATCH_RETRIES", 3),
        backoff_base=_env_float(env, "STEPPEWATCH_BACKOFF_BASE", 1.0),
        max_retry_after=_env_float(env, "STEPPEWATCH_MAX_RETRY_AFTER", 120.0),
        per_host_concurrency=_env_int(env, "STEPPEWATCH_HOST_CONCURRENCY", 2),
        per_host_delay=_env_float(env, "STEPPEWATCH_HOST_DELAY", 1.0),
        respect_robots=env.get("STEPPEWATCH_IGNORE_ROBOTS", "") not in {"1", "true", "yes"},
        network_policy=NetworkPolicy.from_value(env.get(ENV_ALLOW_PRIVATE)),
    )
    return Settings(
        sources_path=sources_path,
        warehouse_url=warehouse_url,
        data_dir=data_dir,
        http=http,
        source_workers=_env_int(env, "STEPPEWATCH_SOURCE_WORKERS", 4),
        # CPU-bound: one worker process per core, at most four
        extract_workers=_env_int(env, "STEPPEWATCH_EXTRACT_WORKERS", max(1, min(4, os.cpu_count() or 1))),
        batch_size=_env_int(env, "STEPPEWATCH_BATCH_SIZE", 50),
        max_items_per_source=_env_int(env, "STEPPEWATCH_MAX_ITEMS_PER_SOURCE", 200),
        favor_precision=env.get("STEPPEWATCH_FAVOR_PRECISION", "1").strip().lower() not in {"0", "false", "no", "off"},
    )
