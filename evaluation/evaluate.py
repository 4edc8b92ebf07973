"""`make eval`: the tagger against the labelled texts, and against a keyword baseline.

    python -m evaluation.evaluate [--set devset|heldout|all] [--errors] [--json FILE]

Prints precision, recall and F1 for relevance, and micro-averaged precision and recall
for the countries and groups the tagger ties to the region, by language as well. The
baseline is keyword co-occurrence: a text is relevant when it names a Central Asian state
and a terrorism word anywhere; its countries are the states it names, its groups the
groups it names.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = {"devset": HERE / "devset", "heldout": HERE / "heldout"}

STATE_WORDS = {
    "Kazakhstan": ("kazakhstan", "казахстан"),
    "Kyrgyzstan": ("kyrgyzstan", "кыргызстан", "киргизи"),
    "Tajikistan": ("tajikistan", "таджикистан"),
    "Turkmenistan": ("turkmenistan", "туркменистан", "туркмени"),
    "Uzbekistan": ("uzbekistan", "узбекистан"),
}
TERROR_WORDS = re.compile(
    r"terror|extremis|jihad|militant|insurgen|isis|isil|daesh|islamic state|теракт|террор|экстремис|джихад|боевик|игил",
    re.IGNORECASE,
)


@dataclass
class Record:
    id: str
    language: str
    title: str
    text: str
    relevant: bool
    countries: set[str]
    groups: set[str]
    category: str


@dataclass
class Prediction:
    relevant: bool
    countries: set[str]
    groups: set[str]
    score: float = 0.0


def load_records(paths: Iterable[Path]) -> list[Record]:
    records = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                records.append(Record(raw["id"], raw["language"], raw["title"], raw["text"], raw["relevant"],
                                      set(raw["countries"]), set(raw["groups"]), raw.get("category", "")))
    return records


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, gold: set, predicted: set) -> None:
        self.tp += len(gold & predicted)
        self.fp += len(predicted - gold)
        self.fn += len(gold - predicted)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass
class Scores:
    relevance: Counts = field(default_factory=Counts)
    countries: Counts = field(default_factory=Counts)
    groups: Counts = field(default_factory=Counts)

    def add(self, record: Record, prediction: Prediction) -> None:
        self.relevance.add({record.id} if record.relevant else set(), {record.id} if prediction.relevant else set())
        self.countries.add({(record.id, c) for c in record.countries}, {(record.id, c) for c in prediction.countries})
        self.groups.add({(record.id, g) for g in record.groups}, {(record.id, g) for g in prediction.groups})


def baseline(records: Sequence[Record]) -> list[Prediction]:
    """Keyword co-occurrence: a state and a terrorism word anywhere in the text."""
    from steppewatch.gazetteer import EntityType, load_gazetteer

    groups = [(e.canonical, [a.lower() for a in e.aliases]) for e in load_gazetteer().of_type(EntityType.GROUP)]
    predictions = []
    for record in records:
        text = f"{record.title}\n{record.text}".lower()
        states = {state for state, words in STATE_WORDS.items() if any(w in text for w in words)}
        relevant = bool(states) and bool(TERROR_WORDS.search(text))
        named = {name for name, aliases in groups if any(a in text for a in aliases)} if relevant else set()
        predictions.append(Prediction(relevant, states if relevant else set(), named))
    return predictions


def tagger_predictions(records: Sequence[Record]) -> tuple[list[Prediction], list, float]:
    from steppewatch.tagger import Tagger

    tagger = Tagger()
    started = time.perf_counter()
    results = list(tagger.tag_many((r.text, r.title, r.language) for r in records))
    elapsed = time.perf_counter() - started
    predictions = [Prediction(r.relevant, set(r.countries), set(r.groups), r.score) for r in results]
    return predictions, results, elapsed


def score(records: Sequence[Record], predictions: Sequence[Prediction],
          key: Callable[[Record], str] | None = None) -> dict[str, Scores]:
    by: dict[str, Scores] = defaultdict(Scores)
    for record, prediction in zip(records, predictions):
        by["all"].add(record, prediction)
        if key is not None:
            by[key(record)].add(record, prediction)
    return dict(by)


def _row(name: str, scores: Scores) -> str:
    r, c, g = scores.relevance, scores.countries, scores.groups
    return (f"{name:<22} relevance P {r.precision:.3f} R {r.recall:.3f} F1 {r.f1:.3f} | "
            f"countries P {c.precision:.3f} R {c.recall:.3f} F1 {c.f1:.3f} | "
            f"groups P {g.precision:.3f} R {g.recall:.3f} F1 {g.f1:.3f}")


def print_errors(records: Sequence[Record], predictions: Sequence[Prediction], results: Sequence) -> None:
    print("\nerrors:")
    for record, prediction, result in zip(records, predictions, results):
        wrong = []
        if record.relevant != prediction.relevant:
            wrong.append(f"relevance gold {record.relevant} got {prediction.relevant} ({prediction.score:.2f})")
        if record.countries != prediction.countries and (record.relevant and prediction.relevant):
            wrong.append(f"countries -{sorted(record.countries - prediction.countries)} "
                         f"+{sorted(prediction.countries - record.countries)}")
        if record.groups != prediction.groups and (record.relevant and prediction.relevant):
            wrong.append(f"groups -{sorted(record.groups - prediction.groups)} "
                         f"+{sorted(prediction.groups - record.groups)}")
        if not wrong:
            continue
        print(f"- {record.id} [{record.language} {record.category}] {record.title[:70]}")
        for line in wrong:
            print(f"    {line}")
        for mention in [*result.title_mentions, *result.mentions][:6]:
            print(f"    {mention.section:<5} {mention.rule:<28} {mention.weight:.2f} {mention.aliases}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=[*SETS, "all"], default="devset")
    parser.add_argument("--errors", action="store_true", help="list every text the tagger gets wrong")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args(argv)
    chosen = list(SETS) if args.set == "all" else [args.set]
    report = {}
    for name in chosen:
        records = load_records(sorted(SETS[name].glob("*.jsonl")))
        if not records:
            print(f"{name}: no labelled texts in {SETS[name]}")
            continue
        predictions, results, elapsed = tagger_predictions(records)
        words = sum(len(r.text.split()) + len(r.title.split()) for r in records)
        positives = sum(r.relevant for r in records)
        by_language = {"en": sum(r.language == "en" for r in records), "ru": sum(r.language == "ru" for r in records)}
        print(f"\n{name}: {len(records)} texts ({positives} relevant; {by_language['en']} English, "
              f"{by_language['ru']} Russian), {words:,} words, tagged in {elapsed:.1f} s")
        tagged = score(records, predictions, key=lambda r: f"tagger {r.language}")
        keyword = score(records, baseline(records), key=lambda r: f"baseline {r.language}")
        print(_row("tagger", tagged["all"]))
        print(_row("keyword baseline", keyword["all"]))
        for language in ("en", "ru"):
            if f"tagger {language}" in tagged:
                print(_row(f"  tagger, {language}", tagged[f"tagger {language}"]))
                print(_row(f"  baseline, {language}", keyword[f"baseline {language}"]))
        report[name] = {
            "texts": len(records), "relevant": positives, "words": words,
            "tagger": {k: {m: getattr(v, m).as_dict() for m in ("relevance", "countries", "groups")}
                       for k, v in tagged.items()},
            "baseline": {k: {m: getattr(v, m).as_dict() for m in ("relevance", "countries", "groups")}
                         for k, v in keyword.items()},
        }
        if args.errors:
            print_errors(records, predictions, results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
