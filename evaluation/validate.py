"""Check labelled JSONL files against the labelling guide (evaluation/LABELLING.md).

    python evaluation/validate.py evaluation/devset/*.jsonl

Prints one line per problem and exits non-zero when there is any.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

COUNTRIES = {"Kazakhstan", "Kyrgyzstan", "Tajikistan", "Turkmenistan", "Uzbekistan"}
GROUPS = {
    "Islamic State", "ISKP", "Islamic Movement of Uzbekistan", "Islamic Jihad Union", "Taliban",
    "Tehrik-i-Taliban Pakistan", "al-Qaeda", "Hizb ut-Tahrir", "Jamaat Ansarullah",
    "Katibat Imam al-Bukhari", "Katibat al-Tawhid wal-Jihad", "Hayat Tahrir al-Sham", "al-Nusra Front",
    "East Turkestan Islamic Movement", "al-Shabaab", "Boko Haram", "Tablighi Jamaat", "Akromiya",
    "Jund al-Khilafah", "Jaysh al-Muhajirin wal-Ansar", "Islamic Renaissance Party of Tajikistan", "Group 24",
}
FIELDS = {"id", "language", "title", "text", "relevant", "countries", "groups", "persons", "category", "notes"}


def check_record(record: dict) -> list[str]:
    problems = []
    missing = FIELDS - record.keys()
    if missing:
        problems.append(f"missing fields {sorted(missing)}")
        return problems
    if record["language"] not in {"en", "ru"}:
        problems.append(f"language {record['language']!r} is not en or ru")
    if not isinstance(record["relevant"], bool):
        problems.append("relevant is not a boolean")
    for name in ("title", "text", "category", "notes", "id"):
        if not isinstance(record[name], str) or not record[name].strip():
            problems.append(f"{name} is empty or not a string")
    for name, vocabulary in (("countries", COUNTRIES), ("groups", GROUPS)):
        values = record[name]
        if not isinstance(values, list):
            problems.append(f"{name} is not a list")
            continue
        unknown = [v for v in values if v not in vocabulary]
        if unknown:
            problems.append(f"{name}: not canonical: {unknown}")
        if not record["relevant"] and values:
            problems.append(f"{name} must be [] for a non-relevant text")
    if not isinstance(record["persons"], list):
        problems.append("persons is not a list")
    return problems


def main(paths: list[str]) -> int:
    seen: Counter[str] = Counter()
    bad = 0
    total = 0
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            total += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                print(f"{path}:{number}: not JSON: {err}")
                bad += 1
                continue
            seen[record.get("id", "")] += 1
            for problem in check_record(record):
                print(f"{path}:{number}: {record.get('id')}: {problem}")
                bad += 1
    for record_id, count in seen.items():
        if count > 1:
            print(f"id {record_id!r} appears {count} times")
            bad += 1
    print(f"{total} records, {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
