"""The sources file: load, validate with line numbers, and describe sources."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from .config import ConfigError

LOGGER = logging.getLogger(__name__)


class SourceKind(str, Enum):
    NEWS = "news"
    THINK_TANK = "think_tank"


REQUIRED_KEYS = ("name", "kind", "feed", "homepage", "language")
OPTIONAL_KEYS = ("sitemap", "archive", "country", "verified", "enabled", "notes")
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Source:
    """One monitored outlet, as declared in the sources file."""

    name: str
    kind: SourceKind
    feed: str
    homepage: str
    language: str
    sitemap: str | None = None
    archive: str | None = None
    country: str | None = None
    enabled: bool = True
    line: int | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.feed).hostname or ""


@dataclass(frozen=True)
class SourceProblem:
    """A validation error or warning, located in the file."""

    path: str
    line: int | None
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.severity}: {self.field}: {self.message}"


class SourcesError(ConfigError):
    """The sources file cannot be used; carries every problem found."""

    def __init__(self, problems: list[SourceProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value.strip())
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def validate_sources(text: str, path: str = "<sources>") -> tuple[list[Source], list[SourceProblem]]:
    """Parse and validate a sources document; return the usable sources and all problems.

    Problems name the line and the field, e.g. ``sources.yaml:14: error: sources[3].kind:
    'newz' is not one of news, think_tank``.
    """
    problems: list[SourceProblem] = []

    def problem(line: int | None, fld: str, message: str, severity: str = "error") -> None:
        problems.append(SourceProblem(path, line, fld, message, severity))

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem(mark.line + 1 if mark else None, "yaml", f"not valid YAML: {getattr(err, 'problem', err)}")
        return [], problems
    if root is None or not isinstance(root, yaml.MappingNode):
        problem(1, "sources", "the file must be a mapping with a top-level 'sources' list")
        return [], problems
    top = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    if "sources" not in top:
        problem(root.start_mark.line + 1, "sources", "missing the top-level 'sources' list")
        return [], problems
    seq = top["sources"]
    if not isinstance(seq, yaml.SequenceNode):
        problem(seq.start_mark.line + 1, "sources", "must be a list of sources")
        return [], problems

    sources: list[Source] = []
    seen_names: dict[str, int] = {}
    for index, node in enumerate(seq.value):
        line = node.start_mark.line + 1
        label = f"sources[{index}]"
        if not isinstance(node, yaml.MappingNode):
            problem(line, label, "each source must be a mapping of keys to values")
            continue
        fields: dict[str, tuple[object, int]] = {}
        for key_node, value_node in node.value:
            if key_node.value == "name" and isinstance(value_node, yaml.ScalarNode) and value_node.value.strip():
                label = f"{label} ({value_node.value.strip()})"
                break
        for key_node, value_node in node.value:
            key = key_node.value
            key_line = key_node.start_mark.line + 1
            if key in fields:
                problem(key_line, f"{label}.{key}", "given twice")
            if key not in REQUIRED_KEYS and key not in OPTIONAL_KEYS:
                problem(key_line, f"{label}.{key}", "unknown key (ignored)", "warning")
            # nested values are not part of the format; keep scalars only
            scalar = loader.construct_object(value_node) if isinstance(value_node, yaml.ScalarNode) else None
            fields[key] = (scalar, key_line)
        errors_before = sum(p.severity == "error" for p in problems)
        for key in REQUIRED_KEYS:
            if key not in fields or fields[key][0] in (None, ""):
                problem(line, f"{label}.{key}", "required and missing")

        def check(key: str, ok: bool, message: str) -> None:
            if key in fields and fields[key][0] not in (None, "") and not ok:
                problem(fields[key][1], f"{label}.{key}", message)

        value = lambda key: fields.get(key, (None, 0))[0]  # noqa: E731
        check("name", isinstance(value("name"), str), "must be text")
        if isinstance(value("name"), str) and value("name") in seen_names:
            problem(fields["name"][1], f"{label}.name",
                    f"duplicate name, first used on line {seen_names[value('name')]}")
        kinds = ", ".join(k.value for k in SourceKind)
        check("kind", value("kind") in {k.value for k in SourceKind}, f"{value('kind')!r} is not one of {kinds}")
        for key in ("feed", "homepage", "sitemap"):
            check(key, _is_http_url(value(key)), f"{value(key)!r} is not an http(s) URL")
        check("archive", _is_http_url(value("archive")) and "{page}" in str(value("archive")),
              "must be an http(s) URL template containing {page}")
        check("language", isinstance(value("language"), str) and bool(_LANGUAGE_RE.match(value("language"))),
              f"{value('language')!r} is not an ISO 639-1 code such as en or ru")
        check("country", isinstance(value("country"), str) and bool(_COUNTRY_RE.match(value("country"))),
              f"{value('country')!r} is not an ISO 3166 alpha-2 code such as KZ")
        check("enabled", isinstance(value("enabled"), bool), "must be true or false")
        check("verified", isinstance(value("verified"), bool), "must be true or false")
        if sum(p.severity == "error" for p in problems) > errors_before:
            continue
        seen_names[value("name")] = fields["name"][1]
        sources.append(
            Source(
                name=value("name").strip(),
                kind=SourceKind(value("kind")),
                feed=value("feed").strip(),
                homepage=value("homepage").strip(),
                language=value("language"),
                sitemap=value("sitemap") or None,
                archive=value("archive") or None,
                country=value("country") or None,
                enabled=value("enabled") is not False,
                line=line,
            )
        )
    if not sources and not any(p.severity == "error" for p in problems):
        problem(seq.start_mark.line + 1, "sources", "the list is empty")
    return sources, problems


def load_sources(path: str | Path, *, only: list[str] | None = None) -> list[Source]:
    """Load the enabled sources of a file; raise :class:`SourcesError` on any error.

    ``only`` restricts the result to the named sources (unknown names are an error).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SourcesError([SourceProblem(str(path), None, "file", f"cannot read: {err.strerror or err}")]) from err
    sources, problems = validate_sources(text, str(path))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise SourcesError(errors)
    for warning in problems:
        LOGGER.warning("%s", warning)
    if only:
        known = {s.name for s in sources}
        missing = [name for name in only if name not in known]
        if missing:
            raise SourcesError([SourceProblem(str(path), None, "name", f"no source named {n!r}") for n in missing])
        sources = [s for s in sources if s.name in only]
    return [s for s in sources if s.enabled]


def source_names(path: str | Path | None = None) -> list[str]:
    """The names of the enabled sources (the configured file by default)."""
    if path is None:
        from .config import load_settings

        path = load_settings().sources_path
    return [source.name for source in load_sources(path)]
