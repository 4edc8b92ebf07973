"""The time window a pass covers: feed items are selected by their feed date in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 date or datetime (``2026-03-10``, ``2026-03-10T06:00Z``) as UTC."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError as err:
        raise ValueError(f"{text!r} is not an ISO 8601 date or datetime (e.g. 2026-03-10 or 2026-03-10T06:00Z)") from err


@dataclass(frozen=True)
class Window:
    """A half-open interval [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"the window ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})")

    @classmethod
    def last_hours(cls, hours: float = 24, *, now: datetime | None = None) -> Window:
        end = as_utc(now or datetime.now(timezone.utc))
        return cls(end - timedelta(hours=hours), end)

    @classmethod
    def from_strings(cls, start: str | None, end: str | None, *, now: datetime | None = None) -> Window:
        """The CLI's ``--start``/``--end``: either may be omitted (default: the last 24 hours)."""
        end_at = parse_instant(end) if end else as_utc(now or datetime.now(timezone.utc))
        start_at = parse_instant(start) if start else end_at - timedelta(hours=24)
        return cls(start_at, end_at)

    def contains(self, moment: datetime) -> bool:
        return self.start <= as_utc(moment) < self.end

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def window_for_run(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_after: datetime | None,
    *,
    now: datetime | None = None,
) -> Window:
    """The window a scheduled or manual run covers: its data interval when it has one,
    otherwise the day before it was started (Airflow 3 manual runs may have no logical date,
    and then no data interval)."""
    if data_interval_start is not None and data_interval_end is not None and data_interval_end > data_interval_start:
        return Window(data_interval_start, data_interval_end)
    end = as_utc(run_after or now or datetime.now(timezone.utc))
    return Window(end - timedelta(days=1), end)


def window_from_context(context) -> Window:
    """:func:`window_for_run` from an Airflow task context (a mapping)."""
    dag_run = context.get("dag_run")
    return window_for_run(context.get("data_interval_start"), context.get("data_interval_end"),
                          getattr(dag_run, "run_after", None))
