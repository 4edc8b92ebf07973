"""Near-duplicate detection: syndicated copies match, distinct stories do not."""

from __future__ import annotations

import subprocess
import sys

from test_extraction import extract

from steppewatch import fingerprint

ORIGINAL = "steppe-times/2026/03/10/dushanbe-arrests.html"
COPY = "caspian-post/2026/03/13/syndicated-dushanbe-arrests.html"
GOLDEN_PREFIX = "f540da1753397814"
OTHERS = [
    "steppe-times/2026/03/18/kazakh-aktobe-trial.html",
    "steppe-times/2026/03/11/cotton-harvest.html",
    "ferghana-wire/news/2026-03-12-border-talks.html",
]


def test_syndicated_copy_is_a_near_duplicate():
    original, copy = extract(ORIGINAL), extract(COPY)
    assert original.content_hash != copy.content_hash, "the copy was edited"
    assert fingerprint.similarity(original.signature, copy.signature) >= fingerprint.NEAR_DUPLICATE_SIMILARITY


def test_distinct_stories_on_the_same_topic_are_not():
    original = extract(ORIGINAL)
    for other in OTHERS:
        assert fingerprint.similarity(original.signature, extract(other).signature) < 0.15, other


def test_content_hash_ignores_whitespace_and_case():
    assert fingerprint.content_hash("Dushanbe  police\nsaid") == fingerprint.content_hash("dushanbe police said")
    assert fingerprint.content_hash("Dushanbe police said") != fingerprint.content_hash("Khujand police said")


def test_index_returns_the_best_match_above_the_threshold():
    original, copy = extract(ORIGINAL), extract(COPY)
    index = fingerprint.NearDuplicateIndex()
    for number, path in enumerate(OTHERS, start=10):
        index.add(number, extract(path).signature)
    assert index.best_match(copy.signature) is None
    index.add(1, original.signature)
    match = index.best_match(copy.signature)
    assert match is not None and match[0] == 1
    assert index.best_match(original.signature, exclude=1) is None


def test_signatures_are_stable_across_processes():
    # a signature stored by yesterday's run must compare with one computed today
    text = "the same text in two runs of the pipeline"
    code = f"from steppewatch.fingerprint import minhash; print(minhash({text!r}).hex())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == fingerprint.minhash(text).hex()
    assert fingerprint.minhash(text).hex()[:16] == GOLDEN_PREFIX, "the hash family changed: stored signatures break"
