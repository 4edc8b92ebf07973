"""The sources file: the shipped list, and errors that name the line and the field."""

from __future__ import annotations

from collections import Counter

import pytest

from steppewatch.config import default_sources_path
from steppewatch.sources import SourceKind, SourcesError, load_sources, validate_sources


def test_shipped_sources_cover_the_region():
    shipped = load_sources(default_sources_path())
    assert len(shipped) >= 25
    kinds = Counter(s.kind for s in shipped)
    assert kinds[SourceKind.THINK_TANK] >= 10 and kinds[SourceKind.NEWS] >= 15
    languages = Counter(s.language for s in shipped)
    assert languages["en"] >= 20 and languages["ru"] >= 8
    assert len({s.name for s in shipped}) == len(shipped)
    assert all(s.feed.startswith(("http://", "https://")) for s in shipped)
    names = " ".join(s.name for s in shipped)
    for expected in ("Eurasianet", "Jamestown", "Crisis Group", "CABAR", "Long War Journal", "Diplomat",
                     "Times of Central Asia", "Kun.uz", "Asia-Plus", "24.kg", "AKIpress"):
        assert expected in names, expected


def problems_of(text: str):
    return [str(p) for p in validate_sources(text, "s.yaml")[1]]


def test_every_problem_names_line_and_field():
    text = (
        "sources:\n"
        "  - name: Good\n    kind: news\n    feed: https://good.example/rss\n    homepage: https://good.example\n"
        "    language: en\n"
        "  - name: Bad\n    kind: blog\n    feed: ftp://bad.example/rss\n    homepage: https://bad.example\n"
        "    language: English\n    sitemap: sitemap.xml\n    archive: https://bad.example/feed/\n    colour: red\n"
        "  - name: Good\n    kind: news\n    feed: https://dup.example/rss\n    homepage: https://dup.example\n"
        "    language: ru\n"
        "  - kind: news\n    feed: https://anon.example/rss\n"
    )
    found = problems_of(text)
    assert "s.yaml:8: error: sources[1] (Bad).kind: 'blog' is not one of news, think_tank" in found
    assert "s.yaml:9: error: sources[1] (Bad).feed: 'ftp://bad.example/rss' is not an http(s) URL" in found
    assert "s.yaml:11: error: sources[1] (Bad).language: 'English' is not an ISO 639-1 code such as en or ru" in found
    assert "s.yaml:12: error: sources[1] (Bad).sitemap: 'sitemap.xml' is not an http(s) URL" in found
    assert "s.yaml:13: error: sources[1] (Bad).archive: must be an http(s) URL template containing {page}" in found
    assert "s.yaml:14: warning: sources[1] (Bad).colour: unknown key (ignored)" in found
    assert "s.yaml:15: error: sources[2] (Good).name: duplicate name, first used on line 2" in found
    assert "s.yaml:20: error: sources[3].name: required and missing" in found
    assert "s.yaml:20: error: sources[3].homepage: required and missing" in found


@pytest.mark.parametrize("text, expected", [
    ("sources: [unclosed\n", "s.yaml:2: error: yaml: not valid YAML"),
    ("- just a list\n", "s.yaml:1: error: sources: the file must be a mapping"),
    ("feeds: []\n", "missing the top-level 'sources' list"),
    ("sources: {}\n", "sources: must be a list of sources"),
    ("sources: []\n", "sources: the list is empty"),
    ("sources:\n  - just text\n", "s.yaml:2: error: sources[0]: each source must be a mapping"),
])
def test_structural_problems(text, expected):
    assert any(expected in p for p in problems_of(text)), problems_of(text)


def test_load_raises_with_all_errors_and_filters_by_name(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("sources:\n  - name: A\n    kind: news\n    feed: https://a.example/rss\n"
                    "    homepage: https://a.example\n    language: en\n  - name: B\n    kind: think_tank\n"
                    "    feed: https://b.example/rss\n    homepage: https://b.example\n    language: en\n"
                    "    enabled: false\n")
    assert [s.name for s in load_sources(path)] == ["A"], "disabled sources are skipped"
    assert [s.name for s in load_sources(path, only=["A"])] == ["A"]
    with pytest.raises(SourcesError, match="no source named 'C'"):
        load_sources(path, only=["C"])
    with pytest.raises(SourcesError, match="cannot read"):
        load_sources(tmp_path / "missing.yaml")
