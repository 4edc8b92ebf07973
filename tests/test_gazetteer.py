"""The gazetteer file: its contract with DESIGN.md, its checks, and the Russian stem."""

from __future__ import annotations

import pytest

from steppewatch.gazetteer import (
    CENTRAL_ASIAN_STATES,
    DEFAULT_GAZETTEER,
    EntityType,
    GazetteerError,
    load_gazetteer,
    russian_stem,
)
from steppewatch.tagger import Tagger, tagger_version

# The canonical names DESIGN.md says the tagger emits.
DESIGN_GROUPS = {
    "Islamic State", "ISKP", "Islamic Movement of Uzbekistan", "Islamic Jihad Union", "Taliban",
    "Tehrik-i-Taliban Pakistan", "al-Qaeda", "Hizb ut-Tahrir", "Jamaat Ansarullah", "Katibat Imam al-Bukhari",
    "Katibat al-Tawhid wal-Jihad", "Hayat Tahrir al-Sham", "al-Nusra Front", "East Turkestan Islamic Movement",
    "al-Shabaab", "Boko Haram",
}
RECURRING_PLACES = {
    "Fergana Valley", "Rasht Valley", "Gorno-Badakhshan", "Batken", "Osh", "Jalal-Abad", "Khatlon", "Surkhandarya",
    "Termez", "Aktobe", "Zhanaozen", "Karakalpakstan",
}


def test_packaged_gazetteer_covers_the_design_names():
    gazetteer = load_gazetteer()
    countries = {e.canonical for e in gazetteer.of_type(EntityType.COUNTRY)}
    groups = {e.canonical for e in gazetteer.of_type(EntityType.GROUP)}
    places = {e.canonical for e in gazetteer.of_type(EntityType.PLACE, EntityType.REGION)}
    assert countries == set(CENTRAL_ASIAN_STATES)
    assert DESIGN_GROUPS <= groups
    assert RECURRING_PLACES <= places
    security = {e.canonical for e in gazetteer.of_type(EntityType.SECURITY)}
    assert {"CSTO", "SCO Regional Anti-Terrorist Structure"} <= security
    # every state has its nationals, and each national entity carries the nationality guard
    nationals = gazetteer.of_type(EntityType.NATIONAL)
    assert {e.countries[0] for e in nationals} == set(CENTRAL_ASIAN_STATES)
    assert all(e.guard == "nationality" for e in nationals)


def test_every_group_and_state_has_english_and_russian_aliases():
    gazetteer = load_gazetteer()
    for entity in gazetteer.of_type(EntityType.COUNTRY, EntityType.GROUP):
        names = [*entity.aliases, *entity.cased]
        assert any(any("a" <= c.lower() <= "z" for c in name) for name in names), entity.id
        assert any(any("а" <= c.lower() <= "я" for c in name) for name in names), entity.id


@pytest.mark.parametrize("forms", [
    ["Таджикистан", "Таджикистана", "Таджикистане", "Таджикистаном", "Таджикистану"],
    ["таджикский", "таджикского", "таджикские", "таджикской", "таджикскими"],
    ["теракт", "теракта", "терактов", "терактом", "теракте"],
    ["боевик", "боевики", "боевиков", "боевикам", "боевиками"],
    ["казах", "казахи", "казахов", "казахам"],
    ["Баткенская", "Баткенской", "Баткенскую"],
])
def test_russian_stem_maps_the_forms_of_a_word_to_one_key(forms):
    assert len({russian_stem(form) for form in forms}) == 1, {f: russian_stem(f) for f in forms}


def test_russian_stem_leaves_latin_words_and_short_words_alone():
    assert russian_stem("ISIS") == "isis"
    assert russian_stem("Ош") == "ош"


@pytest.mark.parametrize("text", [
    "Суд в Москве рассмотрел дело о подготовке террористического акта.",  # акта ≠ Актау
    "Семей боевиков вернули из лагерей, сообщил источник о терроризме.",  # семей ≠ Семей
    "Грузы для боевиков перехватили на границе Грузии.",  # груз ≠ Грузия
])
def test_common_russian_words_are_not_taken_for_places(text):
    result = Tagger(ner_models={}).tag(text, language="ru")
    assert result.countries == [] and all(
        h.label != "PLACE" for m in result.mentions for h in m.entities), result.mentions


def _write(tmp_path, body: str):
    path = tmp_path / "gazetteer.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, message", [
    ("entities:\n- {id: a, type: planet, canonical: A, en: [A]}\n", "type 'planet' is not one of"),
    ("entities:\n- {id: a, type: term, canonical: A, en: [a]}\n", "a term needs a strength"),
    ("entities:\n- {id: a, type: place, canonical: A, country: Mongolia, en: [A]}\n", "not Central Asian states"),
    ("entities:\n- {id: a, type: group, canonical: A, guard: maybe, en: [A]}\n", "unknown guard 'maybe'"),
    ("entities:\n- {id: a, type: group, canonical: A}\n", "no aliases"),
    ("entities:\n- {id: a, type: group, canonical: A, en: [A]}\n- {id: a, type: group, canonical: B, en: [B]}\n",
     "duplicate id 'a'"),
    ("entities: [\n", "not valid YAML"),
])
def test_a_malformed_gazetteer_is_refused_with_the_entry_named(tmp_path, body, message):
    with pytest.raises(GazetteerError, match=message):
        load_gazetteer(_write(tmp_path, body))


def test_changing_the_gazetteer_changes_the_tagger_version(tmp_path):
    packaged = load_gazetteer()
    edited = DEFAULT_GAZETTEER.read_text(encoding="utf-8") + (
        "- {id: test-place, type: place, canonical: Test Place, country: Kyrgyzstan, en: [Testabad]}\n")
    changed = load_gazetteer(_write(tmp_path, edited))
    assert tagger_version(changed) != tagger_version(packaged)
    # and the new entry is used at once
    result = Tagger(changed, ner_models={}).tag("Militants of the Islamic State were arrested in Testabad.")
    assert result.relevant and result.countries == ["Kyrgyzstan"]
