"""The rules that turn gazetteer entities into mentions, and mentions into a relevance score.

A *mention* ties a Central Asian **anchor** (a state, a place in it, its nationals, a
regional body, or a group or militant from the region) to a terrorism **signal** (a
group, a known militant, a counter-terrorism body, the vocabulary of terrorism,
extremism, militancy, recruitment and radicalisation). Rules, strongest first:

- ``<anchor>+<signal>``: both in one sentence;
- ``window:<anchor>+<signal>``: in two adjacent sentences of one paragraph;
- ``lead:`` / ``headline:``: in a short report, the place of the headline or first
  paragraph and a signal further down, or the headline's signal and a nationality further
  down (wire copy splits the who and the what across paragraphs).

Weak words (attack, blast, recruited) never make a link alone; they strengthen one.
Guards run first and drop ambiguous aliases whose context says they mean something else.

Everything here works on a :class:`Passage`, an index of one spaCy ``Doc`` (its
sentences, paragraphs and gazetteer entities) built once, so that the rules stay linear
in the length of the text.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace

from .gazetteer import CENTRAL_ASIAN_STATES, Entity, EntityType, Gazetteer, Strength

LOGGER = logging.getLogger(__name__)

RELEVANCE_THRESHOLD = 0.5
# Weight of a same-sentence link, by what carries the terrorism signal.
SIGNAL_WEIGHTS = {
    "group": 0.85,
    "person": 0.85,
    "ct_body": 0.7,
    "term:strong": 0.7,
    "term:medium": 0.45,
}
STRONG_SIGNALS = frozenset({"group", "person", "ct_body", "term:strong"})
# A link across two adjacent sentences says less than one inside a sentence.
WINDOW_FACTOR = 0.6
# A regional anchor ("Central Asia", the CSTO) ties less precisely than a state.
REGION_FACTOR = 0.9
# Each weak word (attack, blast, recruited) beside a link strengthens it a little (two at most).
SUPPORT_BONUS = 0.05
MAX_MENTION_WEIGHT = 0.97
# Where a mention stands: the headline says what the story is about, the lead what matters.
SECTION_FACTORS = {"title": 1.25, "lead": 1.1, "body": 1.0}
LEAD_SENTENCES = 3
# Short reports: links between the headline or first paragraph and the other paragraphs.
SHORT_TEXT_WORDS = 400
LEAD_FACTOR = 0.55
BRIEF_WORDS = 200
BRIEF_LEAD_FACTOR = 0.75
# "the Khorasan branch of the Islamic State": the parent this close to the branch is a gloss.
GLOSS_TOKENS = 7
LINE_BREAKS = "steppewatch_line_breaks"
# States come from links at least this strong (a loose two-sentence link names no state).
COUNTRY_LINK_WEIGHT = 0.35

_ETHNIC_WORDS = frozenset({"ethnic", "ethnically", "этнический", "этническая", "этнические", "этнических",
                           "этническим", "этническими", "этнического", "этнической"})
# Foreign states whose own citizens include Tajiks, Uzbeks, Turkmen, Kazakhs and Kyrgyz by
# ethnicity: an ethnic name beside them is not a Central Asian nationality.
_ETHNIC_HOMES = frozenset({"afghanistan", "iran", "iraq", "syria", "mongolia", "china", "turkey"})
_CITIZEN_WORDS = frozenset({
    "citizen", "citizens", "national", "nationals", "passport", "passports", "гражданин", "гражданина",
    "гражданину", "гражданином", "граждане", "граждан", "гражданам", "гражданка", "гражданки", "подданный",
})
_SENSOR_WORDS = frozenset({
    "sensor", "sensors", "gyroscope", "gyroscopes", "accelerometer", "accelerometers", "inertial", "drone",
    "drones", "chip", "chips", "firmware", "navigation", "gps", "smartphone", "imus", "датчик", "датчики",
    "гироскоп", "акселерометр", "инерциальный", "инерциальные", "инерциального", "дрон", "дроны", "беспилотник",
    "беспилотника", "навигации", "модуль", "модуля",
})
_NON_VIOLENT_ATTACK = frozenset({
    "heart", "cyber", "panic", "asthma", "shark", "dog", "anxiety", "ransomware", "phishing", "hacker",
    "hackers", "ddos", "denial-of-service", "allergic", "migraine",
})
_GOVERNMENT_WORDS = frozenset({
    "government", "governments", "authorities", "administration", "officials", "official", "delegation",
    "minister", "ministers", "ministry", "ambassador", "embassy", "envoy", "diplomats", "diplomatic", "cabinet",
    "governor", "consulate", "de", "interim", "caretaker", "talks", "negotiators", "counterparts", "control",
    "controlled", "rule", "ruled", "takeover", "regime", "recognition", "recognise", "recognize",
    "правительство", "правительства", "правительством", "власти", "властями", "властей", "администрация",
    "администрации", "делегация", "делегации", "министр", "министра", "министерство", "посол", "посла",
    "посольство", "представители", "представителями", "временное", "временного", "переговоры", "дипломаты",
    "контроль", "контролем", "режим", "режима", "признание", "прихода", "приход",
})
_ISIS_NAME_CONTEXT = frozenset({"goddess", "river", "temple", "cult", "lady", "miss", "mrs", "ms", "named",
                                "daughter", "богиня", "богини", "богиней", "храм"})
# The headline's signal ties to a state or a nationality further down, not to a city: a city
# is often only where a quoted expert sits ("a researcher from Almaty").
_HEADLINE_ANCHORS = frozenset({EntityType.COUNTRY, EntityType.NATIONAL, EntityType.SECURITY})


# -- evidence -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityHit:
    """One matched entity of a mention, with its offsets (in the text, or in the title)."""

    text: str
    label: str
    canonical: str
    id: str
    start: int
    end: int
    role: str  # anchor | signal | support | person (found by the statistical NER)
    field: str = "text"

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class Mention:
    """A passage that ties a Central Asian anchor to a terrorism signal."""

    start: int
    end: int
    sentence: str
    rule: str
    weight: float
    section: str  # title | lead | body
    entities: list[EntityHit] = field(default_factory=list)

    @property
    def aliases(self) -> list[str]:
        return sorted({e.text for e in self.entities if e.role in {"anchor", "signal"}})

    def as_json(self) -> dict:
        return {
            "start": self.start, "end": self.end, "sentence": self.sentence, "rule": self.rule,
            "weight": round(self.weight, 3), "section": self.section, "aliases": self.aliases,
            "entities": [e.as_json() for e in self.entities],
        }


# -- the index of one doc ---------------------------------------------------------------

Found = tuple[object, Entity]  # (spaCy Span, gazetteer entity)


@dataclass
class Sentence:
    span: object
    index: int
    paragraph: int
    entities: list[Found]
    anchors: list[Found] = field(default_factory=list)
    signals: list[tuple[object, Entity, str]] = field(default_factory=list)
    support: list[Found] = field(default_factory=list)
    armed: list[Found] = field(default_factory=list)

    def has_term(self, *strengths: Strength) -> bool:
        return any(entity.strength in strengths for _, entity in self.entities if entity.type is EntityType.TERM)


@dataclass
class Passage:
    """A doc's sentences, paragraphs and gazetteer entities, indexed once.

    The doc holds the headline and the text (``title + "\n\n" + text``): its first
    ``title_sentences`` sentences, ``title_chars`` characters, are the headline.
    """

    doc: object
    sentences: list[Sentence]
    words: int
    title_chars: int = 0
    title_sentences: int = 0

    @property
    def title(self) -> list[Sentence]:
        return self.sentences[:self.title_sentences]

    @property
    def body(self) -> list[Sentence]:
        return self.sentences[self.title_sentences:]

    def section(self, sentence_index: int) -> str:
        if sentence_index < self.title_sentences:
            return "title"
        return "lead" if sentence_index - self.title_sentences < LEAD_SENTENCES else "body"

    @property
    def entities(self) -> Iterable[Found]:
        for sentence in self.sentences:
            yield from sentence.entities


def index_doc(doc, gazetteer: Gazetteer, entities: Sequence[object] | None = None, *,
              title_chars: int = 0) -> Passage:
    """Index ``doc`` and its gazetteer entities (``doc.ents`` unless given); the first
    ``title_chars`` characters are the headline."""
    from spacy.attrs import IS_ALPHA

    spans = list(doc.sents)
    starts = [span.start for span in spans]
    breaks = line_breaks(doc)
    sentences = [Sentence(span, index, bisect.bisect_right(breaks, span.start), [])
                 for index, span in enumerate(spans)]
    for ent in doc.ents if entities is None else entities:
        entity = gazetteer.entities.get(ent.ent_id_) if ent.ent_id_ else None
        if entity is not None and sentences:
            sentences[bisect.bisect_right(starts, ent.start) - 1].entities.append((ent, entity))
    title_sentences = sum(1 for span in spans if span.start_char < title_chars)
    title_words = sum(1 for token in doc[:spans[title_sentences - 1].end] if token.is_alpha) if title_sentences else 0
    return Passage(doc, sentences, doc.count_by(IS_ALPHA).get(1, 0) - title_words, title_chars, title_sentences)


def line_breaks(doc) -> list[int]:
    """Indices of the whitespace tokens that hold a line break (paragraph ends); found once
    per doc (the sentence component asks first) and kept in ``doc.user_data``."""
    from spacy.attrs import IS_SPACE

    cached = doc.user_data.get(LINE_BREAKS)
    if cached is not None:
        return cached
    found = []
    if len(doc):
        spaces = doc.to_array([IS_SPACE]).nonzero()[0]
        found = [int(i) for i in spaces if "\n" in doc[int(i)].text]
    doc.user_data[LINE_BREAKS] = found
    return found


def classify(passage: Passage) -> None:
    """Sort each sentence's entities into anchors, signals, support and armed context."""
    for sentence in passage.sentences:
        sentence.anchors, sentence.signals, sentence.support, sentence.armed = [], [], [], []
        for ent, entity in sentence.entities:
            if _is_gloss(ent, entity, sentence.entities):
                continue
            kind = signal_kind(entity)
            if entity.is_anchor:
                sentence.anchors.append((ent, entity))
            if kind is not None:
                sentence.signals.append((ent, entity, kind))
            elif entity.type is EntityType.TERM and entity.strength is Strength.WEAK:
                sentence.support.append((ent, entity))
            elif entity.type is EntityType.TERM and entity.strength is Strength.ARMED:
                sentence.armed.append((ent, entity))


def signal_kind(entity: Entity) -> str | None:
    """What an entity contributes as a terrorism signal (None: it is not one)."""
    if entity.type is EntityType.GROUP:
        return "group"
    if entity.type is EntityType.PERSON:
        return "person"
    if entity.type is EntityType.SECURITY and entity.strength is Strength.STRONG:
        return "ct_body"
    if entity.type is EntityType.TERM and entity.strength in (Strength.STRONG, Strength.MEDIUM):
        return f"term:{entity.strength.value}"
    return None


def _is_gloss(ent, entity: Entity, entities: Sequence[Found]) -> bool:
    """"the Khorasan branch of the Islamic State", "ISIS-K, the Islamic State affiliate": the
    parent named to explain the branch is not a second group."""
    if entity.id != "islamic-state":
        return False
    return any(other.id == "iskp" and abs(o.start - ent.start) <= GLOSS_TOKENS for o, other in entities)


# -- guards -------------------------------------------------------------------------------


def apply_guards(passage: Passage, gazetteer: Gazetteer) -> list[object]:
    """Drop the entities whose ambiguous alias means something else here; return the spans kept."""
    doc = passage.doc
    # entities named in full somewhere in the text, not only by an acronym
    full_names = {entity.id for ent, entity in passage.entities if ent.text not in entity.cased}
    abroad = _ethnicities_abroad(passage)
    for sentence in passage.sentences:
        kept = []
        for ent, entity in sentence.entities:
            if entity.guard is None:
                kept.append((ent, entity))
            elif entity.guard == "nationality" and entity.id in abroad and not _says_citizen(ent, doc):
                continue
            elif _guard_passes(entity, ent, sentence, passage, full_names):
                kept.append((ent, entity))
        sentence.entities = kept
    return [ent for ent, _ in passage.entities]


def _guard_passes(entity: Entity, ent, sentence: Sentence, passage: Passage, full_names: set[str]) -> bool:
    doc, sent, guard = passage.doc, sentence.span, entity.guard
    if guard == "nationality":
        return not _ethnic_abroad_here(ent, sentence, doc)
    if guard == "islamic_state_short":
        return _islamic_state_short(entity, ent, sentence, doc)
    if guard == "imu_acronym":
        if ent.text not in entity.cased:
            return True
        if any(t.lower_ in _SENSOR_WORDS for t in _neighbourhood(passage, sentence)):
            return False
        return entity.id in full_names or sentence.has_term(Strength.STRONG, Strength.MEDIUM)
    if guard == "needs_full_name":
        return ent.text not in entity.cased or entity.id in full_names
    if guard == "armed_context":
        # "the Taliban government", "Taliban officials", "талибские власти": a neighbour, not a threat
        near = doc[max(sent.start, ent.start - 2):min(sent.end, ent.end + 5)]
        if any(t.lower_ in _GOVERNMENT_WORDS for t in near):
            return False
        return sentence.has_term(Strength.STRONG, Strength.MEDIUM, Strength.WEAK, Strength.ARMED)
    if guard == "needs_extremism_frame":
        around = passage.sentences[max(0, sentence.index - 1):sentence.index + 2]
        return any(s.has_term(Strength.STRONG, Strength.MEDIUM) for s in around)
    if guard == "attack_sense":
        previous = {t.lower_ for t in doc[max(sent.start, ent.start - 2):ent.start]}
        return not previous & _NON_VIOLENT_ATTACK
    return True


def _islamic_state_short(entity: Entity, ent, sentence: Sentence, doc) -> bool:
    """IS, Isis, ИГ: the Islamic State, unless the context says a verb, a name or a goddess."""
    sent = sentence.span
    if ent.text in {"IS", "Isis"}:
        letters = [c for c in sent.text if c.isalpha()]
        if letters and sum(c.isupper() for c in letters) > 0.6 * len(letters):
            return False  # a headline in capitals: "IS" is a verb
    if ent.text != "Isis":
        return True
    previous = {t.lower_ for t in doc[max(sent.start, ent.start - 2):ent.start]}
    if previous & _ISIS_NAME_CONTEXT:
        return False
    following = doc[ent.end] if ent.end < len(doc) else None
    if following is not None and following.is_title and following.is_alpha and following.ent_type_ == "":
        return False  # "Isis Moreno": a name
    return sentence.has_term(Strength.STRONG, Strength.MEDIUM, Strength.WEAK) or any(
        e.type is EntityType.GROUP and e.id != entity.id for _, e in sentence.entities)


def _neighbourhood(passage: Passage, sentence: Sentence):
    lo = passage.sentences[max(0, sentence.index - 1)].span.start
    hi = passage.sentences[min(len(passage.sentences) - 1, sentence.index + 1)].span.end
    return passage.doc[lo:hi]


def _says_citizen(ent, doc) -> bool:
    """"a Tajik citizen", "Uzbek nationals", "гражданин Таджикистана": a nationality, spelled out."""
    around = [*doc[max(0, ent.start - 1):ent.start], *doc[ent.end:ent.end + 2]]
    return any(t.lower_ in _CITIZEN_WORDS for t in around)


def _ethnic_abroad_here(ent, sentence: Sentence, doc) -> bool:
    """"Iraqi Turkmen", "Afghanistan's Uzbeks", "туркмены Ирака", "ethnic Kazakhs in Xinjiang"."""
    if _says_citizen(ent, doc):
        return False
    lo, hi = max(sentence.span.start, ent.start - 3), min(sentence.span.end, ent.end + 2)
    for other, entity in sentence.entities:
        if other.start != ent.start and other.end > lo and other.start < hi and entity.id in _ETHNIC_HOMES:
            return True
    before = doc[max(sentence.span.start, ent.start - 2):ent.start]
    if any(t.lower_ in _ETHNIC_WORDS for t in before):
        foreign = any(e.id in _ETHNIC_HOMES for _, e in sentence.entities)
        local = any(e.type in (EntityType.COUNTRY, EntityType.PLACE) for _, e in sentence.entities)
        return foreign and not local
    return False


def _ethnicities_abroad(passage: Passage) -> set[str]:
    """Nationality entities that this text uses for an ethnic group abroad throughout.

    When a text speaks of Iraqi Turkmen more often than it names Turkmenistan and its places,
    its other "Turkmen" are the same community: none of them is a national ("a Turkmen
    citizen" still is).
    """
    abroad: dict[str, tuple[Entity, int]] = {}
    at_home: dict[str, int] = {}
    for sentence in passage.sentences:
        for ent, entity in sentence.entities:
            if entity.guard == "nationality":
                if _ethnic_abroad_here(ent, sentence, passage.doc):
                    abroad[entity.id] = (entity, abroad.get(entity.id, (entity, 0))[1] + 1)
            elif entity.type in (EntityType.COUNTRY, EntityType.PLACE) and len(entity.countries) == 1:
                at_home[entity.countries[0]] = at_home.get(entity.countries[0], 0) + 1
    return {entity_id for entity_id, (entity, count) in abroad.items()
            if count > at_home.get(entity.countries[0], 0)}


# -- links ----------------------------------------------------------------------------------


def _hit(ent, entity: Entity, role: str) -> EntityHit:
    return EntityHit(text=ent.text, label=entity.label, canonical=entity.canonical, id=entity.id,
                     start=ent.start_char, end=ent.end_char, role=role)


def _link(anchors: Sequence[Found], signals: Sequence[tuple[object, Entity, str]], support: Sequence[Found],
          *, window: bool) -> tuple[str, float, list[EntityHit]] | None:
    """The strongest anchor–signal link among the given entities, or None."""
    best: tuple[str, float] | None = None
    for ent_a, anchor in anchors:
        for ent_s, signal, kind in signals:
            same = ent_a.start == ent_s.start
            if same and not (signal.home or kind == "ct_body"):
                continue
            # a group or militant from the region, or the SCO's anti-terrorist structure, anchors itself
            rule_anchor = ("home" if signal.home else "self") if same else anchor.type.value
            weight = SIGNAL_WEIGHTS[kind]
            if anchor.type in (EntityType.REGION, EntityType.SECURITY) and not anchor.countries:
                weight *= REGION_FACTOR
            if best is None or weight > best[1]:
                best = (f"{rule_anchor}+{kind}", weight)
    if best is None:
        return None
    rule, weight = best
    weight = min(MAX_MENTION_WEIGHT, weight + SUPPORT_BONUS * min(2, len(support)))
    if window:
        rule, weight = f"window:{rule}", weight * WINDOW_FACTOR
    hits = [_hit(e, x, "anchor") for e, x in anchors]
    anchor_starts = {h.start for h in hits}
    hits += [_hit(e, x, "signal") for e, x, _ in signals if e.start_char not in anchor_starts]
    hits += [_hit(e, x, "support") for e, x in support]
    hits.sort(key=lambda h: h.start)
    return rule, weight, hits


def _trimmed(doc, start: int, end: int):
    """The span without the line breaks that end its sentence."""
    while end > start + 1 and doc[end - 1].is_space:
        end -= 1
    return doc[start:end]


def _mention(passage: Passage, first: Sentence, last: Sentence, link: tuple[str, float, list[EntityHit]]) -> Mention:
    rule, weight, hits = link
    span = _trimmed(passage.doc, first.span.start, last.span.end)
    return Mention(span.start_char, span.end_char, span.text, rule, weight, passage.section(first.index), hits)


def find_mentions(passage: Passage) -> list[Mention]:
    """Same-sentence links, then links across two adjacent sentences of one paragraph."""
    sentences = passage.sentences
    mentions: list[Mention] = []
    linked = [False] * len(sentences)
    for sentence in sentences:
        link = _link(sentence.anchors, sentence.signals, sentence.support, window=False)
        if link is not None:
            mentions.append(_mention(passage, sentence, sentence, link))
            linked[sentence.index] = True

    def neighbours(sentence: Sentence) -> Iterable[Sentence]:
        for index in (sentence.index - 1, sentence.index + 1):
            if 0 <= index < len(sentences) and sentences[index].paragraph == sentence.paragraph:
                yield sentences[index]

    # a signal without an anchor, beside a sentence that names one
    for sentence in sentences:
        if linked[sentence.index] or not sentence.signals:
            continue
        for other in neighbours(sentence):
            if not other.anchors:
                continue
            link = _link(other.anchors, sentence.signals, [*sentence.support, *other.support], window=True)
            if link is not None:
                pair = sorted((sentence, other), key=lambda s: s.index)
                mentions.append(_mention(passage, pair[0], pair[1], link))
                linked[sentence.index] = linked[other.index] = True
                break
    # "Special forces from Kazakhstan, Kyrgyzstan and Tajikistan took part": the anchors of a
    # sentence with security words but no signal, beside a sentence with a strong signal
    for sentence in sentences:
        if linked[sentence.index] or sentence.signals or not sentence.anchors:
            continue
        if not (sentence.support or sentence.armed):
            continue
        for other in neighbours(sentence):
            strong = [s for s in other.signals if s[2] in STRONG_SIGNALS]
            link = _link(sentence.anchors, strong, sentence.support, window=True) if strong else None
            if link is not None:
                pair = sorted((sentence, other), key=lambda s: s.index)
                mentions.append(_mention(passage, pair[0], pair[1], link))
                linked[sentence.index] = True
                break
    mentions.sort(key=lambda m: m.start)
    return mentions


def lead_mentions(passage: Passage, mentions: Sequence[Mention]) -> list[Mention]:
    """Links between the headline or first paragraph of a short report and its other paragraphs.

    Wire copy names the place in the headline or the first paragraph ("BISHKEK – Kyrgyzstan's
    GKNB said...") and the group or the charge a paragraph later, or the group in the headline
    and the attacker's nationality further down. In a short text that is one story; in a long
    one it may not be, so only short texts get these links, at a lower weight, one per paragraph.
    """
    body = passage.body
    if passage.words > SHORT_TEXT_WORDS or not body:
        return []
    factor = BRIEF_LEAD_FACTOR if passage.words <= BRIEF_WORDS else LEAD_FACTOR
    first_paragraph = body[0].paragraph
    lead = [*passage.title, *(s for s in body if s.paragraph == first_paragraph)]
    lead_anchors = [_hit(e, x, "anchor") for s in lead for e, x in s.anchors]
    title_signals = [(e, x, k) for s in passage.title for e, x, k in s.signals if not x.is_anchor]
    use_anchors = bool(lead_anchors) and _sets_security_scene(lead)
    covered = [(m.start, m.end) for m in mentions if not m.rule.startswith("window:")]
    best: dict[int, Mention] = {}
    for sentence in body:
        if any(a <= sentence.span.start_char < b for a, b in covered):
            continue
        candidates = []
        if use_anchors and sentence.paragraph != first_paragraph and sentence.signals:
            # the lead's place, this sentence's signal
            kind = max((k for _, _, k in sentence.signals), key=SIGNAL_WEIGHTS.__getitem__)
            anchor = max(lead_anchors, key=lambda h: h.label != "REGION")
            hits = [*lead_anchors, *(_hit(e, x, "signal") for e, x, _ in sentence.signals)]
            candidates.append((SIGNAL_WEIGHTS[kind] * factor, f"lead:{anchor.label.lower()}+{kind}", hits))
        people_or_states = [(e, x) for e, x in sentence.anchors if x.type in _HEADLINE_ANCHORS]
        if title_signals and people_or_states:
            # the headline's signal, this sentence's nationality or state
            kind = max((k for _, _, k in title_signals), key=SIGNAL_WEIGHTS.__getitem__)
            hits = [*(_hit(e, x, "signal") for e, x, _ in title_signals),
                    *(_hit(e, x, "anchor") for e, x in people_or_states)]
            rule = f"headline:{people_or_states[0][1].type.value}+{kind}"
            candidates.append((SIGNAL_WEIGHTS[kind] * factor, rule, hits))
        for weight, rule, hits in candidates:
            hits = sorted([*hits, *(_hit(e, x, "support") for e, x in sentence.support)], key=lambda h: h.start)
            span = _trimmed(passage.doc, sentence.span.start, sentence.span.end)
            mention = Mention(span.start_char, span.end_char, span.text, rule, weight,
                              passage.section(sentence.index), hits)
            if sentence.paragraph not in best or weight > best[sentence.paragraph].weight:
                best[sentence.paragraph] = mention
    return list(best.values())


def _sets_security_scene(sentences: Sequence[Sentence]) -> bool:
    """Whether the headline or the first paragraph is about security at all (a digest that
    opens with tariffs in Dushanbe does not tie its item on a trial in Belgium to Dushanbe)."""
    return any(entity.type in (EntityType.TERM, EntityType.GROUP, EntityType.PERSON)
               for sentence in sentences for _, entity in sentence.entities)


# -- relevance and what the links name ---------------------------------------------------


def score_article(mentions: Sequence[Mention]) -> float:
    """Combine mention weights into a score in [0, 1]: a noisy OR, weighted by where they stand."""
    remaining = 1.0
    for mention in mentions:
        remaining *= 1.0 - min(MAX_MENTION_WEIGHT, mention.weight * SECTION_FACTORS[mention.section])
    return 1.0 - remaining


def countries_of(mentions: Sequence[Mention], passage: Passage, gazetteer: Gazetteer) -> list[str]:
    """The states the links tie: through anchors (a place names its state), and through groups
    and militants of the region when the text names their state too."""
    named = _where_states_are_named(passage)
    found = _countries_tied([m for m in mentions if m.weight >= COUNTRY_LINK_WEIGHT], named, gazetteer)
    if not found:
        found = _countries_tied(mentions, named, gazetteer)
    return [c for c in CENTRAL_ASIAN_STATES if c in found]


def _countries_tied(mentions: Sequence[Mention], named: dict[str, list[int]], gazetteer: Gazetteer) -> set[str]:
    found: set[str] = set()
    for mention in mentions:
        for hit in mention.entities:
            entity = gazetteer.entities.get(hit.id)
            if entity is None:
                continue
            if hit.role == "anchor" and len(entity.countries) == 1:
                found.add(entity.countries[0])
            elif hit.role == "anchor" and entity.countries:
                found.update(_resolve_ambiguous(entity.countries, hit.start, mention, named, gazetteer))
            if entity.home and entity.home in named:
                found.add(entity.home)
    return found


def _resolve_ambiguous(options: Sequence[str], at: int, mention: Mention, named: dict[str, list[int]],
                       gazetteer: Gazetteer) -> list[str]:
    """The GKNB is Kyrgyz or Tajik, the Fergana Valley three states' own: a state named in the
    same passage decides, else the nearest one the text names."""
    in_passage = {gazetteer.entities[h.id].countries[0] for h in mention.entities
                  if h.id in gazetteer.entities and len(gazetteer.entities[h.id].countries) == 1}
    local = [c for c in options if c in in_passage]
    if local:
        return local
    distances = [(min(abs(p - at) for p in named[c]), c) for c in options if c in named]
    return [min(distances)[1]] if distances else []


def _where_states_are_named(passage: Passage) -> dict[str, list[int]]:
    """Where the text names each state (directly or through a place, national or body)."""
    found: dict[str, list[int]] = {}
    for ent, entity in passage.entities:
        if entity.is_anchor and len(entity.countries) == 1:
            found.setdefault(entity.countries[0], []).append(ent.start_char)
    return found


def canonical_names(mentions: Sequence[Mention], gazetteer: Gazetteer, kind: EntityType) -> list[str]:
    """Canonical names of the entities of one type that the mentions tie, in order of appearance."""
    names: dict[str, None] = {}
    for mention in mentions:
        for hit in mention.entities:
            entity = gazetteer.entities.get(hit.id)
            if entity is not None and entity.type is kind and hit.role in {"signal", "anchor"}:
                names[entity.canonical] = None
    return list(names)


def count_naming(mentions: Sequence[Mention], gazetteer: Gazetteer, *, country: str | None = None,
                 canonical: str | None = None) -> int:
    """How many mentions name a state (through any of its anchors) or an entity (by canonical name)."""
    def names(hit: EntityHit) -> bool:
        if canonical is not None:
            return hit.canonical == canonical
        entity = gazetteer.entities.get(hit.id)
        return entity is not None and hit.role == "anchor" and (country in entity.countries or entity.home == country)

    return sum(1 for mention in mentions if any(names(hit) for hit in mention.entities))


def headline_groups(passage: Passage) -> list[str]:
    """The groups a headline names: what the story is about."""
    return [entity.canonical for s in passage.title for _, entity, kind in s.signals if kind == "group"]


def rebase(mention: Mention, title_chars: int) -> Mention:
    """The mention with offsets into the text (or, for the headline's parts, into the title)."""
    def moved(hit: EntityHit) -> EntityHit:
        if hit.start < title_chars:
            return replace(hit, field="title")
        return replace(hit, start=hit.start - title_chars, end=hit.end - title_chars)

    if mention.section == "title":
        return replace(mention, entities=[replace(h, field="title") for h in mention.entities])
    return replace(mention, start=mention.start - title_chars, end=mention.end - title_chars,
                   entities=[moved(h) for h in mention.entities])
