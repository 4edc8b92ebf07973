"""The gazetteer: canonical entities and their aliases, read from ``data/gazetteer.yaml``.

It is data, not code: one entry per entity with its type, canonical name, the Central
Asian state it anchors a passage to, aliases in English and Russian, acronyms matched with
their case, and the name of a guard for aliases that are ambiguous. Russian aliases are
matched on a light stem (:func:`russian_stem`) so that one form covers its inflections.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path

import yaml

from .config import PACKAGE_DIR

LOGGER = logging.getLogger(__name__)

DEFAULT_GAZETTEER = PACKAGE_DIR / "data" / "gazetteer.yaml"
CENTRAL_ASIAN_STATES = ("Kazakhstan", "Kyrgyzstan", "Tajikistan", "Turkmenistan", "Uzbekistan")


class EntityType(str, Enum):
    COUNTRY = "country"
    REGION = "region"
    PLACE = "place"
    NATIONAL = "national"
    SECURITY = "security"
    GROUP = "group"
    PERSON = "person"
    TERM = "term"
    FOREIGN = "foreign"


class Strength(str, Enum):
    """How much a terrorism term says on its own."""

    STRONG = "strong"
    MEDIUM = "medium"
    WEAK = "weak"
    ARMED = "armed"


# Which entity types tie a passage to Central Asia, and which carry the terrorism signal.
ANCHOR_TYPES = frozenset({EntityType.COUNTRY, EntityType.REGION, EntityType.PLACE, EntityType.NATIONAL,
                          EntityType.SECURITY})
GUARDS = frozenset({
    "nationality", "islamic_state_short", "imu_acronym", "armed_context", "needs_full_name",
    "needs_extremism_frame", "attack_sense",
})


@dataclass(frozen=True)
class Entity:
    id: str
    type: EntityType
    canonical: str
    countries: tuple[str, ...] = ()
    home: str | None = None
    aliases: tuple[str, ...] = ()
    cased: tuple[str, ...] = ()
    strength: Strength | None = None
    guard: str | None = None

    @property
    def is_anchor(self) -> bool:
        """True when the entity ties a passage to Central Asia by itself."""
        return self.type in ANCHOR_TYPES or self.home is not None

    @property
    def label(self) -> str:
        return self.type.value.upper()


class GazetteerError(ValueError):
    """The gazetteer file is malformed."""


@dataclass
class Gazetteer:
    entities: dict[str, Entity] = field(default_factory=dict)
    digest: str = ""

    def __getitem__(self, entity_id: str) -> Entity:
        return self.entities[entity_id]

    def __iter__(self):
        return iter(self.entities.values())

    def __len__(self) -> int:
        return len(self.entities)

    def of_type(self, *types: EntityType) -> list[Entity]:
        return [e for e in self.entities.values() if e.type in types]


_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
# Inflectional endings, longest first; one is removed when the stem keeps enough letters.
_RUSSIAN_ENDINGS = tuple(sorted({
    # adjectives and participles
    "ий", "ый", "ой", "ая", "яя", "ое", "ее", "ие", "ые", "ого", "его", "ому", "ему", "им", "ым", "ом", "ем",
    "ую", "юю", "их", "ых", "ими", "ыми", "ей",
    # nouns
    "а", "я", "о", "е", "ё", "у", "ю", "ы", "и", "ь", "ам", "ям", "ах", "ях", "ами", "ями", "ов", "ев", "ью",
    "ия", "ии", "ию", "ией", "иям", "иях", "иями", "ие", "ием", "ья", "ьи", "ье", "ьё", "ью", "ьям", "ьях",
}, key=len, reverse=True))
_MIN_STEM = 4


@lru_cache(maxsize=200_000)
def russian_stem(word: str) -> str:
    """A light, deterministic stem of a Russian word: lower-cased, ё→е, one ending removed.

    Not a linguistic stemmer: its only job is to map the forms of one name or term to
    the same key (Таджикистана, Таджикистане → таджикистан). Words without Cyrillic
    letters are only lower-cased.
    """
    lower = word.lower().replace("ё", "е")
    if not _CYRILLIC.search(lower) or len(lower) <= _MIN_STEM:
        return lower
    for ending in _RUSSIAN_ENDINGS:
        if lower.endswith(ending) and len(lower) - len(ending) >= _MIN_STEM:
            return lower[: -len(ending)]
    return lower


def _strings(entry: dict, key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise GazetteerError(f"{where}: {key} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _parse_entity(entry: object, where: str) -> Entity:
    if not isinstance(entry, dict):
        raise GazetteerError(f"{where}: an entry must be a mapping")
    for key in ("id", "type", "canonical"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise GazetteerError(f"{where}: {key} is required")
    where = f"{where} ({entry['id']})"
    try:
        kind = EntityType(entry["type"])
    except ValueError as err:
        raise GazetteerError(f"{where}: type {entry['type']!r} is not one of "
                             f"{', '.join(t.value for t in EntityType)}") from err
    countries = _strings(entry, "country", where)
    unknown = [c for c in countries if c not in CENTRAL_ASIAN_STATES]
    home = entry.get("home")
    if home is not None and home not in CENTRAL_ASIAN_STATES:
        unknown.append(home)
    if unknown:
        raise GazetteerError(f"{where}: {unknown} are not Central Asian states")
    strength = entry.get("strength")
    if strength is not None:
        try:
            strength = Strength(strength)
        except ValueError as err:
            raise GazetteerError(f"{where}: strength {strength!r} is not one of "
                                 f"{', '.join(s.value for s in Strength)}") from err
    if kind is EntityType.TERM and strength is None:
        raise GazetteerError(f"{where}: a term needs a strength")
    guard = entry.get("guard")
    if guard is not None and guard not in GUARDS:
        raise GazetteerError(f"{where}: unknown guard {guard!r}")
    aliases = _strings(entry, "en", where) + _strings(entry, "ru", where)
    cased = _strings(entry, "cased", where)
    if not aliases and not cased:
        raise GazetteerError(f"{where}: no aliases")
    return Entity(
        id=entry["id"].strip(), type=kind, canonical=entry["canonical"].strip(), countries=countries,
        home=home, aliases=tuple(dict.fromkeys(aliases)), cased=tuple(dict.fromkeys(cased)),
        strength=strength, guard=guard,
    )


def load_gazetteer(path: Path | str | None = None) -> Gazetteer:
    """Read and check a gazetteer file (the packaged one by default)."""
    path = Path(path) if path else DEFAULT_GAZETTEER
    raw = path.read_bytes()
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise GazetteerError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(document, dict) or not isinstance(document.get("entities"), list):
        raise GazetteerError(f"{path}: expected a mapping with an 'entities' list")
    gazetteer = Gazetteer(digest=hashlib.sha256(raw).hexdigest()[:10])
    for number, entry in enumerate(document["entities"]):
        entity = _parse_entity(entry, f"{path.name}: entities[{number}]")
        if entity.id in gazetteer.entities:
            raise GazetteerError(f"{path.name}: entities[{number}]: duplicate id {entity.id!r}")
        gazetteer.entities[entity.id] = entity
    LOGGER.debug("gazetteer %s: %d entities", path, len(gazetteer))
    return gazetteer
