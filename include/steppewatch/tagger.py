"""The tagger: passages that tie terrorism or violent extremism to Central Asia.

A spaCy pipeline built in code, one per language (English, Russian)::

    tokenizer ─► steppewatch_sentences ─► steppewatch_gazetteer_ruler ─► [ner]
              ─► steppewatch_guards ─► steppewatch_mentions

The gazetteer ruler, an entity ruler fed by the gazetteer, marks every alias: without
regard to case (on a Russian stem for Russian), acronyms as written (IS, IMU, ИГ). An optional
statistical NER (``STEPPEWATCH_NER_MODEL=en_core_web_sm``) adds people and organisations the
gazetteer does not know. ``steppewatch_guards`` drops ambiguous aliases whose context says
they mean something else; ``steppewatch_mentions`` finds the links (see
:mod:`steppewatch.mentions`). :class:`Tagger` tags a text with its title and scores it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import mentions as rules
from .gazetteer import CENTRAL_ASIAN_STATES, EntityType, Gazetteer, load_gazetteer, russian_stem
from .mentions import Mention

LOGGER = logging.getLogger(__name__)

# Bump when the rules or weights change; the gazetteer's digest is added to it.
RULES_VERSION = "1.0"
LANGUAGES = ("en", "ru")
TITLE_CHARS = "steppewatch_title_chars"
ENV_NER_MODEL = "STEPPEWATCH_NER_MODEL"
# Pipes of a statistical model the tagger does not need (only its NER runs).
_UNUSED_MODEL_PIPES = ["parser", "lemmatizer", "attribute_ruler", "tagger", "morphologizer", "senter", "textcat"]


@dataclass
class TagResult:
    """What the tagger says about one text."""

    relevant: bool
    score: float
    countries: list[str]
    groups: list[str]
    persons: list[str]
    mentions: list[Mention]
    title_mentions: list[Mention]
    language: str
    tagger_version: str
    # (kind, canonical name, number of mentions that name it) for the states, groups and people
    tied: list[tuple[str, str, int]] = field(default_factory=list)

    def as_json(self, record_id: object = None) -> dict:
        """The ``steppewatch tag`` output line (offsets index into the text, title ones into the title)."""
        return {
            "id": record_id, "relevant": self.relevant, "score": round(self.score, 4),
            "countries": self.countries, "groups": self.groups, "persons": self.persons,
            "mentions": [m.as_json() for m in self.mentions],
            "title_mentions": [m.as_json() for m in self.title_mentions],
            "language": self.language, "tagger_version": self.tagger_version,
        }


# -- the spaCy pipeline -------------------------------------------------------------------


def _register_components() -> None:
    """Register the custom components once (spaCy's registry is global)."""
    from spacy.language import Language
    from spacy.tokens import Doc

    if Language.has_factory("steppewatch_guards"):
        return
    for name in ("steppewatch_passage", "steppewatch_mentions"):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=None)

    @Language.factory("steppewatch_sentences", default_config={})
    def make_sentences(nlp, name):  # noqa: ARG001 - spaCy's factory signature
        return _Sentences(nlp.vocab)

    @Language.factory("steppewatch_gazetteer_ruler", default_config={})
    def make_ruler(nlp, name):  # noqa: ARG001
        return _RulerSlot()

    @Language.factory("steppewatch_guards", default_config={})
    def make_guards(nlp, name):  # noqa: ARG001 - spaCy's factory signature
        return _Guards()

    @Language.factory("steppewatch_mentions", default_config={})
    def make_mentions(nlp, name):  # noqa: ARG001
        return _Mentions()


class _Sentences:
    """Sentence boundaries: after sentence-final punctuation (and any closing quotes or
    brackets), and at every line break, since headings and datelines carry no full stop.

    The rule of spaCy's ``sentencizer``, on arrays: a pass over every token in Python
    would cost more than tokenizing.
    """

    def __init__(self, vocab):
        import numpy
        from spacy.pipeline import Sentencizer

        self._final = numpy.array(sorted(vocab.strings.add(c) for c in Sentencizer.default_punct_chars),
                                  dtype="uint64")

    def __call__(self, doc):
        import numpy
        from spacy.attrs import IS_PUNCT, IS_SPACE, ORTH, SENT_START

        size = len(doc)
        if not size:
            return doc
        array = doc.to_array([ORTH, IS_PUNCT, IS_SPACE])
        punct, space = array[:, 1].astype(bool), array[:, 2].astype(bool)
        final = numpy.isin(array[:, 0], self._final)
        starts = numpy.full(size, -1, dtype="int32")
        starts[0] = 1
        trailing = punct | final | space
        for index in numpy.flatnonzero(final):
            following = int(index) + 1
            while following < size and trailing[following]:
                following += 1
            if following < size:
                starts[following] = 1
        for index in rules.line_breaks(doc):
            following = index + 1
            while following < size and space[following]:
                following += 1
            if following < size:
                starts[following] = 1
        doc.from_array([SENT_START], starts.reshape(-1, 1).astype("uint64"))
        return doc


class _Guards:
    """Indexes the doc and drops the entities whose ambiguous alias means something else."""

    gazetteer: Gazetteer | None = None

    def __call__(self, doc):
        if self.gazetteer is not None:
            entities = doc.ents
            passage = rules.index_doc(doc, self.gazetteer, entities,
                                      title_chars=doc.user_data.get(TITLE_CHARS, 0))
            kept = rules.apply_guards(passage, self.gazetteer)
            others = [ent for ent in entities if not ent.ent_id_]  # the statistical NER's own
            if len(kept) + len(others) != len(entities):
                doc.ents = sorted([*kept, *others], key=lambda ent: ent.start)
            doc._.steppewatch_passage = passage
        return doc


class _Mentions:
    """Finds the doc's mentions (``doc._.steppewatch_mentions``)."""

    def __call__(self, doc):
        passage = doc._.steppewatch_passage
        if passage is not None:
            rules.classify(passage)
            doc._.steppewatch_mentions = rules.find_mentions(passage)
        return doc


class _RulerSlot:
    """The pipeline's place for the gazetteer ruler, filled by :func:`build_pipeline` (spaCy
    factories take only JSON-like settings, and the gazetteer is an object)."""

    ruler: GazetteerRuler | None = None

    def setup(self, nlp, gazetteer: Gazetteer, *, attr: str) -> None:
        self.ruler = GazetteerRuler(nlp, gazetteer, attr=attr)

    def __call__(self, doc):
        return self.ruler(doc) if self.ruler is not None else doc


class GazetteerRuler:
    """The gazetteer's entity ruler: each alias a phrase pattern labelled with its entity's type
    and id, matched without regard to case (on the Russian stem for Russian), acronyms as
    written. Overlapping matches: the longest wins, then the earliest.

    spaCy's ``entity_ruler`` does the same with one matching attribute; two of them (one per
    attribute) cost a quarter of the tagger's time in their Python bookkeeping, measured with
    ``make bench``, so the two phrase matchers share one component here.
    """

    def __init__(self, nlp, gazetteer: Gazetteer, *, attr: str):
        from spacy.matcher import PhraseMatcher

        self.folded = PhraseMatcher(nlp.vocab, attr=attr)
        self.exact = PhraseMatcher(nlp.vocab, attr="ORTH")
        self.meta: dict[int, tuple[str, str]] = {}
        for entity in gazetteer:
            folded = [alias for alias in entity.aliases if not _is_acronym(alias)]
            exact = [*(alias for alias in entity.aliases if _is_acronym(alias)), *entity.cased]
            if folded:
                self.folded.add(entity.id, [nlp.make_doc(alias) for alias in folded])
            if exact:
                self.exact.add(entity.id, [nlp.make_doc(alias) for alias in exact])
                _keep_periods_off_acronyms(nlp, exact)
            self.meta[nlp.vocab.strings.add(entity.id)] = (entity.label, entity.id)

    def __call__(self, doc):
        from spacy.tokens import Span

        matches = [*self.folded(doc), *self.exact(doc)]
        matches.sort(key=lambda match: (match[1] - match[2], match[1]))
        taken = bytearray(len(doc))
        spans = []
        for match_id, start, end in matches:
            if any(taken[start:end]):
                continue
            taken[start:end] = b"\x01" * (end - start)
            label, entity_id = self.meta[match_id]
            spans.append(Span(doc, start, end, label=label, span_id=entity_id))
        doc.ents = sorted(spans, key=lambda span: span.start)
        return doc


def _is_acronym(alias: str) -> bool:
    """Short all-capital aliases (КТО, ШОС, GBAO) match only in capitals."""
    letters = [c for c in alias if c.isalpha()]
    return bool(letters) and len(letters) <= 5 and all(c.isupper() for c in letters)


def _keep_periods_off_acronyms(nlp, aliases: list[str]) -> None:
    """"ISIS-K." is ISIS, -, K, "." (the tokenizer would read "K." as an initial)."""
    for alias in aliases:
        tokens = [t.text for t in nlp.make_doc(alias)]
        if len(tokens) > 1 and len(tokens[-1]) == 1 and tokens[-1].isalpha():
            nlp.tokenizer.add_special_case(alias + ".", [{"ORTH": t} for t in [*tokens, "."]])


def build_pipeline(language: str, gazetteer: Gazetteer, *, ner_model: str | None = None):
    """A spaCy ``Language`` for ``en`` or ``ru`` whose docs carry their mentions.

    With ``ner_model`` (an installed spaCy package such as ``en_core_web_sm``) its statistical
    NER runs after the rulers and adds people and organisations; the rulers' entities stay.
    """
    import spacy
    from spacy.attrs import NORM

    _register_components()
    if language not in LANGUAGES:
        raise ValueError(f"no pipeline for language {language!r}; use one of {', '.join(LANGUAGES)}")
    if ner_model:
        nlp = spacy.load(ner_model, exclude=_UNUSED_MODEL_PIPES)
        if nlp.lang != language:
            raise ValueError(f"NER model {ner_model} is for {nlp.lang!r}, not {language!r}")
    else:
        nlp = spacy.blank(language)
    if language == "ru":
        # Russian names inflect: match on a stem, computed once per word in the vocabulary.
        nlp.vocab.lex_attr_getters[NORM] = russian_stem
        for lexeme in nlp.vocab:
            lexeme.norm_ = russian_stem(lexeme.orth_)
    nlp.add_pipe("steppewatch_sentences", first=True)
    place = {"before": "ner"} if "ner" in nlp.pipe_names else {}
    nlp.add_pipe("steppewatch_gazetteer_ruler", **place).setup(
        nlp, gazetteer, attr="NORM" if language == "ru" else "LOWER")
    nlp.add_pipe("steppewatch_guards").gazetteer = gazetteer
    nlp.add_pipe("steppewatch_mentions")
    return nlp


# -- the public API -----------------------------------------------------------------------

_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_LATIN = re.compile(r"[A-Za-z]")


def guess_language(text: str) -> str:
    """``ru`` for text mostly in Cyrillic, else ``en`` (the two pipelines there are)."""
    sample = text[:4000]
    return "ru" if len(_CYRILLIC.findall(sample)) > len(_LATIN.findall(sample)) else "en"


def pipeline_language(language: str | None, text: str) -> str:
    """The pipeline for a declared language; other languages go by script (Cyrillic: Russian)."""
    return language if language in LANGUAGES else guess_language(text)


class Tagger:
    """Tags texts; builds each language's pipeline on first use.

    ``ner_models`` maps a language to an installed spaCy model whose NER runs after the
    rulers (by default ``STEPPEWATCH_NER_MODEL`` for English, when set).
    """

    def __init__(self, gazetteer: Gazetteer | None = None, *, ner_models: dict[str, str] | None = None):
        self.gazetteer = gazetteer or load_gazetteer()
        if ner_models is None:
            configured = os.environ.get(ENV_NER_MODEL, "").strip()
            ner_models = {"en": configured} if configured else {}
        self.ner_models = {k: v for k, v in ner_models.items() if v}
        self._pipelines: dict[str, object] = {}
        self.version = tagger_version(self.gazetteer, self.ner_models)

    def pipeline(self, language: str):
        if language not in self._pipelines:
            self._pipelines[language] = build_pipeline(language, self.gazetteer,
                                                       ner_model=self.ner_models.get(language))
        return self._pipelines[language]

    def tag(self, text: str, *, title: str | None = None, language: str | None = None) -> TagResult:
        """Tag one text and its title."""
        return next(self.tag_many([(text, title, language)]))

    def tag_many(self, items: Iterable[tuple[str, str | None, str | None]], *,
                 batch_size: int = 64) -> Iterator[TagResult]:
        """Tag ``(text, title, language)`` triples, yielding the results in order."""
        for language, group in _runs_by_pipeline(items):
            nlp = self.pipeline(language)
            for doc in nlp.pipe((_headed_doc(nlp, text, title) for text, title, _ in group), batch_size=batch_size):
                yield self._result(doc, language)

    def _result(self, doc, language: str) -> TagResult:
        gazetteer = self.gazetteer
        passage = doc._.steppewatch_passage
        found = list(doc._.steppewatch_mentions or [])
        found += rules.lead_mentions(passage, found)
        found.sort(key=lambda m: m.start)
        score = rules.score_article(found)
        relevant = score >= rules.RELEVANCE_THRESHOLD
        countries: list[str] = []
        groups: list[str] = []
        persons: list[str] = []
        if relevant:
            named = set(rules.countries_of(found, passage, gazetteer))
            countries = [c for c in CENTRAL_ASIAN_STATES if c in named]
            groups = list(dict.fromkeys(rules.canonical_names(found, gazetteer, EntityType.GROUP)
                                        + rules.headline_groups(passage)))
            persons = list(dict.fromkeys(rules.canonical_names(found, gazetteer, EntityType.PERSON)
                                         + _add_ner_people(doc, found)))
        tied = [("country", name, rules.count_naming(found, gazetteer, country=name)) for name in countries]
        tied += [("group", name, rules.count_naming(found, gazetteer, canonical=name)) for name in groups]
        tied += [("person", name, rules.count_naming(found, gazetteer, canonical=name)) for name in persons]
        offset = passage.title_chars
        text_mentions = [rules.rebase(m, offset) for m in found if m.section != "title"]
        title_mentions = [rules.rebase(m, offset) for m in found if m.section == "title"]
        return TagResult(relevant, score, countries, groups, persons, text_mentions, title_mentions, language,
                         self.version, tied)


def _headed_doc(nlp, text: str | None, title: str | None):
    """One doc for the headline and the text: ``title + "\n\n" + text`` (the headline's
    length is kept in ``doc.user_data`` so that offsets can be given in the text)."""
    title = " ".join((title or "").split())
    doc = nlp.make_doc(f"{title}\n\n{text or ''}" if title else (text or ""))
    doc.user_data[TITLE_CHARS] = len(title) + 2 if title else 0
    return doc


_SHARED: dict[tuple, Tagger] = {}
_SHARED_LOCK = threading.Lock()


def shared_tagger() -> Tagger:
    """The process's tagger for the packaged gazetteer and the configured NER model (building
    the pipelines takes a second or two; a process that runs several passes builds them once)."""
    key = (os.environ.get(ENV_NER_MODEL, "").strip(),)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Tagger()
        return _SHARED[key]


def _runs_by_pipeline(items: Iterable[tuple[str, str | None, str | None]]):
    """Consecutive runs of items that share a pipeline (so the output keeps the input order)."""
    run: list[tuple[str, str | None, str | None]] = []
    current = None
    for text, title, language in items:
        chosen = pipeline_language(language, f"{title or ''} {text or ''}")
        if current is not None and chosen != current:
            yield current, run
            run = []
        current = chosen
        run.append((text, title, language))
    if run:
        yield current, run


def _add_ner_people(doc, mentions: list[Mention]) -> list[str]:
    """People the statistical NER found inside mention passages (none without a model), added
    to those mentions' evidence."""
    names = []
    for ent in doc.ents:
        if ent.label_ != "PERSON" or ent.ent_id_:
            continue
        for mention in mentions:
            if mention.start <= ent.start_char < mention.end:
                mention.entities.append(rules.EntityHit(ent.text, "PERSON", ent.text, "", ent.start_char, ent.end_char,
                                                        "person"))
                names.append(ent.text)
    return names


def tagger_version(gazetteer: Gazetteer, ner_models: dict[str, str] | None = None) -> str:
    """``<rules>-<gazetteer digest>``, plus a short hash of the NER models when there are any."""
    version = f"{RULES_VERSION}-{gazetteer.digest[:8]}"
    if ner_models:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version

        described = []
        for language, model in sorted(ner_models.items()):
            try:
                described.append(f"{language}:{model}:{package_version(model)}")
            except PackageNotFoundError:  # a model given as a path
                described.append(f"{language}:{model}")
        version += "-ner" + hashlib.sha256("|".join(described).encode()).hexdigest()[:6]
    return version
