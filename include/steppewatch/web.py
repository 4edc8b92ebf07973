"""The analysts' pages: a FastAPI app the Airflow plugin mounts at ``/steppewatch``.

Server-rendered HTML (Jinja2, every value escaped), a chart drawn as SVG on the server (no
script, nothing from a CDN), and exports. The app takes the dependencies every route must
pass: in Airflow, ``requires_authenticated()``, so that a request without an Airflow user
gets 401. All data comes from :mod:`steppewatch.analysis` with parameterised queries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from . import analysis
from .config import ENV_WAREHOUSE, PACKAGE_DIR, load_settings
from .schema import articles, digests, entities, sources
from .warehouse import Warehouse

LOGGER = logging.getLogger(__name__)

TEMPLATES = PACKAGE_DIR / "templates"
WAREHOUSE_CONN_ID = "news_warehouse"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def warehouse_url() -> str:
    """The warehouse of the ``news_warehouse`` connection: ``AIRFLOW_CONN_NEWS_WAREHOUSE``, or a
    connection stored in Airflow's database, or the embedded default."""
    if os.environ.get(ENV_WAREHOUSE):
        return os.environ[ENV_WAREHOUSE]
    try:
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(WAREHOUSE_CONN_ID).get_uri()
    except Exception:  # noqa: BLE001 - no such connection, or no Airflow here: the embedded warehouse
        return load_settings().warehouse_url


def chart_svg(chart: dict, *, width: int = 900, height: int = 260) -> str:
    """Mentions per day as lines, one per series, drawn on the server."""
    days, series = chart["days"], chart["series"]
    left, bottom, top, right = 36, 24, 10, 28
    peak = max([max(s["counts"]) for s in series] + [1])
    span_x = max(1, len(days) - 1)

    def x(i: int) -> float:
        return left + (width - left - right) * i / span_x

    def y(v: int) -> float:
        return top + (height - top - bottom) * (1 - v / peak)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="mentions per day">']
    for tick in sorted({0, peak // 2, peak}):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="#e1e4e8"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" '
                     f'text-anchor="end" fill="#6e7781">{tick}</text>')
    step = max(1, len(days) // 8)
    for i in range(0, len(days), step):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 6}" font-size="11" text-anchor="middle" fill="#6e7781">'
                     f'{days[i]:%m-%d}</text>')
    for number, s in enumerate(series):
        color = PALETTE[number % len(PALETTE)]
        s["color"] = color
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s["counts"]))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


def create_app(*, dependencies: Sequence[object] = (), url_for_warehouse: Callable[[], str] = warehouse_url,
               root: str = "/steppewatch"):
    """The FastAPI app; ``dependencies`` guard every route (Airflow's ``requires_authenticated()``)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    app = FastAPI(title="steppewatch", dependencies=list(dependencies), docs_url=None, redoc_url=None,
                  openapi_url=None)
    state: dict[str, Warehouse] = {}

    @contextmanager
    def connection():
        url = url_for_warehouse()
        if state.get("warehouse") is None or state["warehouse"].url != url:
            state["warehouse"] = Warehouse(url)
        with state["warehouse"].read() as conn:
            yield conn

    def page(name: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(env.get_template(f"{name}.html").render(root=root, page=name, **values),
                            status_code=status)

    def choices(conn) -> dict[str, list[str]]:
        named = {"country": [], "group": [], "person": []}
        for kind, name in conn.execute(sa.select(entities.c.kind, entities.c.canonical)
                                       .order_by(entities.c.kind, entities.c.canonical)):
            named.setdefault(kind, []).append(name)
        named["source"] = list(conn.execute(sa.select(sources.c.name).order_by(sources.c.name)).scalars())
        named["language"] = [v for v in conn.execute(sa.select(articles.c.language).distinct()
                                                     .order_by(articles.c.language)).scalars() if v]
        return named

    def read_filter(request: Request) -> tuple[analysis.ArticleFilter, str | None]:
        try:
            return analysis.ArticleFilter.from_params(dict(request.query_params)), None
        except analysis.FilterError as err:
            return analysis.ArticleFilter(), str(err)

    @app.get("/", include_in_schema=False)
    def home():
        return RedirectResponse(f"{root}/mentions")

    @app.get("/mentions", response_class=HTMLResponse)
    def mentions_page(request: Request, page_number: int = Query(1, alias="page", ge=1, le=100_000),
                      per_page: int = Query(25, ge=1, le=100)):
        flt, error = read_filter(request)
        with connection() as conn:
            result = analysis.find_articles(conn, flt, page=page_number, per_page=per_page)
            named = choices(conn)
        return page("mentions", 400 if error else 200, result=result, flt=flt, flt_text=flt.describe(),
                    choices=named, query=urlencode(flt.as_params()), error=error)

    @app.get("/articles/{article_id}", response_class=HTMLResponse)
    def article_page(article_id: int):
        with connection() as conn:
            detail = analysis.article_detail(conn, article_id)
        if detail is None:
            return page("message", 404, error=f"No article {article_id}.")
        return page("article", detail=detail, a=detail.article)

    @app.get("/trends", response_class=HTMLResponse)
    def trends_page(request: Request, kind: str = Query("country", pattern="^(country|group)$")):
        flt, error = read_filter(request)
        with connection() as conn:
            chart = analysis.trends(conn, flt, kind=kind)
            named = choices(conn)
        svg = chart_svg(chart)
        return page("trends", 400 if error else 200, chart=chart, svg=svg, kind=kind, flt=flt, choices=named,
                    query=urlencode(flt.as_params()), error=error)

    @app.get("/sources", response_class=HTMLResponse)
    def sources_page(days: int = Query(14, ge=3, le=90)):
        with connection() as conn:
            health = analysis.source_health(conn, days=days)
        return page("sources", health=health, days=days, silent_days=analysis.SILENT_DAYS)

    @app.get("/digests", response_class=HTMLResponse)
    def digests_page():
        with connection() as conn:
            found = conn.execute(sa.select(digests).order_by(digests.c.window_start.desc()).limit(200)).mappings().all()
        return page("digests", digests=found, digest=None)

    @app.get("/digests/{digest_id}", response_class=HTMLResponse)
    def digest_page(digest_id: int):
        with connection() as conn:
            found = conn.execute(sa.select(digests).where(digests.c.id == digest_id)).mappings().first()
        if found is None:
            return page("message", 404, error=f"No digest {digest_id}.")
        return page("digests", digest={**found, "sections": [(h, items) for h, items in found["sections"]]},
                    digests=[])

    def export(request: Request, what: str, fmt: str) -> Response:
        flt, error = read_filter(request)
        if error:
            return Response(error + "\n", status_code=400, media_type="text/plain")
        fields = analysis.ARTICLE_FIELDS if what == "articles" else analysis.MENTION_FIELDS
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")

        def rows():
            with connection() as conn:
                records = (analysis.export_articles(conn, flt) if what == "articles"
                           else analysis.export_mentions(conn, flt))
                yield from (analysis.to_csv(records, fields) if fmt == "csv" else analysis.to_jsonl(records))

        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
        return StreamingResponse(rows(), media_type=media, headers={
            "Content-Disposition": f'attachment; filename="steppewatch-{what}-{stamp}.{fmt}"'})

    @app.get("/export/{what}.{fmt}")
    def export_route(request: Request, what: str, fmt: str):
        if what not in {"articles", "mentions"} or fmt not in {"csv", "jsonl"}:
            return Response("exports: articles or mentions, as csv or jsonl\n", status_code=404,
                            media_type="text/plain")
        return export(request, what, fmt)

    @app.get("/feed.atom")
    def atom(request: Request):
        flt, error = read_filter(request)
        if error:
            return Response(error + "\n", status_code=400, media_type="text/plain")
        site = str(request.base_url).rstrip("/") + root
        with connection() as conn:
            body = analysis.atom_feed(conn, flt, feed_url=str(request.url), site_url=site)
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    return app
