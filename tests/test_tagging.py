"""Tagging stored articles: the pass tags what it extracts, mentions are replaced atomically,
reruns change nothing, and `steppewatch retag` re-tags older versions without the network.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from steppewatch import store
from steppewatch.config import load_settings
from steppewatch.pipeline import TaggingService, run_pass, tag_articles
from steppewatch.schema import article_entities, articles, entities, mentions, problems, sources
from steppewatch.sources import load_sources
from steppewatch.tagger import Tagger
from world import full_window, run

RELEVANT = {
    "/steppe-times/2026/03/10/dushanbe-arrests.html",
    "/caspian-post/2026/03/13/syndicated-dushanbe-arrests.html",
    "/steppe-times/2026/03/18/kazakh-aktobe-trial.html",
    "/analysis-desk/reports/jihadist-networks-central-asia.html",
    "/azattyk-ru/2026/03/14/zaderzhaniya.html",
}


def by_path(warehouse, base):
    with warehouse.read() as conn:
        return {r["url"][len(base):]: dict(r) for r in conn.execute(sa.select(articles)).mappings()}


def tag_tables(warehouse):
    with warehouse.read() as conn:
        return {
            "articles": [dict(r) for r in conn.execute(
                sa.select(articles.c.id, articles.c.relevant, articles.c.relevance_score, articles.c.tagger_version,
                          articles.c.tagged_at).order_by(articles.c.id)).mappings()],
            "mentions": [dict(r) for r in conn.execute(sa.select(mentions).order_by(mentions.c.id)).mappings()],
            "article_entities": [dict(r) for r in conn.execute(
                sa.select(article_entities).order_by(article_entities.c.article_id, article_entities.c.entity_id)
            ).mappings()],
            "entities": [dict(r) for r in conn.execute(sa.select(entities).order_by(entities.c.id)).mappings()],
        }


def test_the_pass_tags_every_article_it_extracts(world, warehouse):
    report = run(world, warehouse)
    stored = by_path(warehouse, world.server.base)
    version = Tagger(ner_models={}).version
    assert all(r["tagger_version"] == version and r["tagged_at"] is not None for r in stored.values())
    assert {path for path, r in stored.items() if r["relevant"]} == RELEVANT
    assert report.totals()["tagged"] == len(stored) and report.totals()["relevant"] == len(RELEVANT)

    arrests = stored["/steppe-times/2026/03/10/dushanbe-arrests.html"]
    with warehouse.read() as conn:
        found = conn.execute(sa.select(mentions).where(mentions.c.article_id == arrests["id"])).mappings().all()
        tied = conn.execute(sa.select(entities.c.kind, entities.c.canonical).join(
            article_entities, article_entities.c.entity_id == entities.c.id)
            .where(article_entities.c.article_id == arrests["id"])).all()
    assert found and all(m["tagger_version"] == version for m in found)
    for mention in found:
        source = arrests["title"] if mention["field"] == "title" else arrests["text"]
        assert source[mention["start_offset"]:mention["end_offset"]] == mention["sentence"]
        assert mention["rule"] and mention["entities"] and mention["weight"] > 0
        assert all({"text", "label", "canonical", "id", "role"} <= e.keys() for e in mention["entities"])
    assert ("country", "Tajikistan") in tied and ("group", "ISKP") in tied

    russian = stored["/azattyk-ru/2026/03/14/zaderzhaniya.html"]
    assert russian["language"] == "ru" and russian["relevant"]
    cotton = stored["/steppe-times/2026/03/11/cotton-harvest.html"]
    with warehouse.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(article_entities)
                            .where(article_entities.c.article_id == cotton["id"])).scalar() == 0


def test_rerun_and_reprocess_leave_the_same_tag_rows(world, warehouse):
    run(world, warehouse)
    before = tag_tables(warehouse)
    again = run(world, warehouse)
    assert again.totals()["tagged"] == 0, "nothing new to tag"
    run(world, warehouse, reprocess=True)
    assert tag_tables(warehouse) == before, "re-tagging with the same version rewrites nothing"


def test_a_retag_replaces_an_articles_mentions_atomically(world, warehouse):
    run(world, warehouse)
    arrests = by_path(warehouse, world.server.base)["/steppe-times/2026/03/10/dushanbe-arrests.html"]
    before = tag_tables(warehouse)
    tagger = Tagger(ner_models={})
    result = tagger.tag("A Kyrgyz citizen joined Jamaat Ansarullah, prosecutors in Osh said.", title="A short text")

    class Interrupted(Exception):
        pass

    def write_then_fail(conn):
        store.write_tags(conn, [(arrests["id"], result)], datetime.now(timezone.utc))
        raise Interrupted  # the worker dies before the batch commits

    with pytest.raises(Interrupted):
        warehouse.transaction(write_then_fail)
    assert tag_tables(warehouse) == before, "a failed re-tag leaves the old mentions, all of them"

    warehouse.transaction(lambda conn: store.write_tags(conn, [(arrests["id"], result)], datetime.now(timezone.utc)))
    with warehouse.read() as conn:
        sentences = conn.execute(sa.select(mentions.c.sentence).where(mentions.c.article_id == arrests["id"])).scalars()
        assert list(sentences) == ["A Kyrgyz citizen joined Jamaat Ansarullah, prosecutors in Osh said."]
        tied = conn.execute(sa.select(entities.c.canonical).join(
            article_entities, article_entities.c.entity_id == entities.c.id)
            .where(article_entities.c.article_id == arrests["id"])).scalars().all()
    assert sorted(tied) == ["Jamaat Ansarullah", "Kyrgyzstan"]


def test_retag_command_retags_older_versions_without_the_network(world, warehouse, warehouse_url):
    run(world, warehouse)
    hits_before = sum(world.server.hits.values())
    with warehouse.engine.begin() as conn:
        conn.execute(articles.update().where(articles.c.relevant.is_(True)).values(tagger_version="0.9-older"))
    env = {**os.environ, "AIRFLOW_CONN_NEWS_WAREHOUSE": warehouse_url}
    done = subprocess.run([sys.executable, "-m", "steppewatch", "retag", "--json"], capture_output=True, text=True,
                          env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["articles"] == len(RELEVANT) and summary["changed"] == len(RELEVANT)
    assert summary["relevant"] == len(RELEVANT) and summary["problems"] == []
    version = Tagger(ner_models={}).version
    stored = by_path(warehouse, world.server.base)
    assert {r["tagger_version"] for r in stored.values()} == {version}
    assert sum(world.server.hits.values()) == hits_before, "retag never touches the network"

    again = subprocess.run([sys.executable, "-m", "steppewatch", "retag", "--json"], capture_output=True, text=True,
                           env=env, timeout=180)
    assert json.loads(again.stdout)["articles"] == 0, "nothing older is left"
    window = subprocess.run([sys.executable, "-m", "steppewatch", "retag", "--all", "--start", "2026-03-10",
                             "--end", "2026-03-11", "--json"], capture_output=True, text=True, env=env, timeout=180)
    summary = json.loads(window.stdout)
    assert summary["articles"] >= 1 and summary["changed"] == 0 and summary["unchanged"] == summary["articles"]


def test_an_article_the_tagger_cannot_take_is_recorded_and_the_others_are_tagged(warehouse):
    now = datetime.now(timezone.utc)
    with warehouse.engine.begin() as conn:
        conn.execute(sources.insert().values(name="S", kind="news", feed_url="http://x/", homepage="http://x/",
                                             language="en", updated_at=now))
        common = {"source": "S", "word_count": 10, "content_hash": "0" * 64, "extractor_version": "t",
                  "first_seen_at": now, "extracted_at": now, "updated_at": now}
        conn.execute(articles.insert(), [
            {**common, "url": "http://x/1", "title": "One", "language": "en",
             "text": "A Tajik citizen was detained in Moscow over a terrorist plot."},
            # beyond spaCy's limit of a million characters: a page of junk, not an article
            {**common, "url": "http://x/2", "title": "Two", "language": "en", "text": "word " * 250_001},
            {**common, "url": "http://x/3", "title": "Three", "language": "en", "text": "Cotton prices rose."},
        ])
    with warehouse.read() as conn:
        ids = store.articles_to_tag(conn)
    outcome = tag_articles(warehouse, TaggingService(Tagger(ner_models={})), ids, batch_size=10, run_id=None,
                           source="S")
    assert outcome.written == 2 and outcome.relevant == 1
    with warehouse.read() as conn:
        tagged = dict(conn.execute(sa.select(articles.c.url, articles.c.tagged_at)).all())
        recorded = conn.execute(sa.select(problems.c.stage, problems.c.kind, problems.c.reason)).all()
    assert tagged["http://x/2"] is None, "left untagged, to be tried again"
    assert tagged["http://x/1"] is not None and tagged["http://x/3"] is not None
    assert [(stage, kind) for stage, kind, _ in recorded] == [("tag", "tag_error")]
    assert "article" in recorded[0][2] and "1000000" in recorded[0][2].replace(",", "")


def test_a_pass_reports_tagging_per_source(world, warehouse):
    settings = load_settings().with_overrides(sources_path=world.sources_file)
    report = run_pass(settings, load_sources(world.sources_file, only=["Steppe Times"]), full_window(),
                      warehouse=warehouse)
    (steppe,) = report.sources
    with warehouse.read() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(articles)
                              .where(articles.c.source == "Steppe Times")).scalar()
    assert steppe.tagged == stored and steppe.relevant == 2  # the Dushanbe arrests and the Aktobe trial


def test_the_retag_task_retags_older_versions_of_a_range(world, warehouse):
    from steppewatch import orchestration

    run(world, warehouse)
    with warehouse.engine.begin() as conn:
        conn.execute(articles.update().values(tagger_version="0.9-older"))
    # what the steppewatch_retag DAG's task does, with its params
    outcome = orchestration.retag({"params": {"start": "2026-03-10", "end": "2026-03-12", "all": False}})
    stored = by_path(warehouse, world.server.base)
    in_range = {path for path, r in stored.items()
                if r["published_at"] and "2026-03-10" <= r["published_at"].date().isoformat() < "2026-03-12"}
    assert outcome["articles"] >= len(in_range) > 0 and outcome["changed"] == outcome["articles"]
    assert {r["tagger_version"] for p, r in stored.items() if p in in_range} == {outcome["tagger_version"]}
    assert "0.9-older" in {r["tagger_version"] for r in stored.values()}, "articles outside the range stay as they were"
