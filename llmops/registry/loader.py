"""Loading the registry: every file parsed and checked, the result a `Registry` or every problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from llmops.registry.checks import cross_checks
from llmops.registry.located import MAX_FILE_BYTES, Located, parse_text, pydantic_problems
from llmops.registry.problems import Problem, RegistryError
from llmops.registry.schema import SCHEMA_HEADER, Deployment, ModelEntry
from llmops.settings import StackSettings


def parse_file(path: Path, display: str) -> tuple[ModelEntry | None, Located | None, list[Problem]]:
    """Parse and validate one file in isolation. The entry is None when it is unusable;
    problems that do not stop its use (a missing schema header) come with it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, None, [Problem(display, 1, "", f"cannot read the file: {exc.strerror or exc}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, None, [Problem(display, 1, "", f"larger than {MAX_FILE_BYTES} bytes: not a model entry")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, None, [Problem(display, line, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")]
    problems: list[Problem] = []
    if not text.startswith(SCHEMA_HEADER):
        problems.append(Problem(display, 1, "", f"the first line must be `{SCHEMA_HEADER}` (editor validation)"))
    located, parse_problems = parse_text(text, display)
    problems.extend(parse_problems)
    if located is None:
        return None, None, problems
    if not isinstance(located.data, dict):
        kind = "a list" if isinstance(located.data, list) else f"a {type(located.data).__name__}"
        problems.append(Problem(display, 1, "", f"the file must hold a mapping (a model entry), not {kind}"))
        return None, located, problems
    try:
        entry = ModelEntry.model_validate(located.data)
    except ValidationError as exc:
        return None, located, problems + pydantic_problems(exc, located, display)
    return (None if parse_problems else entry), located, problems


@dataclass
class Registry:
    root: Path
    models: dict[str, ModelEntry] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    # How each model's file is shown and its parsed lines, to locate later checks (sizing).
    displays: dict[str, str] = field(default_factory=dict)
    located: dict[str, Located] = field(default_factory=dict)

    def deployed_to(self, environment: str) -> list[Deployment]:
        return [m.deployment(environment) for _, m in sorted(self.models.items()) if environment in m.deployments]

    def problem(self, model: str, loc: tuple[int | str, ...], message: str) -> Problem:
        """A problem about `model`, located at `loc` in its file."""
        display = self.displays.get(model, f"{self.root.name}/{model}.yaml")
        located = self.located.get(model)
        line, shown = located.locate(loc, keep_last=True) if located else (1, ".".join(map(str, loc)))
        return Problem(display, line, shown, message)


def validate(
    models_dir: Path, stacks: dict[str, StackSettings], paths: list[Path] | None = None
) -> tuple[Registry, list[Problem]]:
    """Validate the registry (or only `paths`, still checked against the rest for duplicate names)."""
    registry = Registry(root=models_dir)
    problems: list[Problem] = []
    # Files globbed from models_dir are shown and compared by name; resolving each costs more than parsing it.
    root = models_dir.resolve()
    inside = sorted(models_dir.glob("*.yaml"))
    explicit = {p.resolve() for p in paths or []}
    names = {f.name for f in inside}
    extra = [p for p in paths or [] if not (p.resolve().parent == root and p.name in names)]

    parsed: list[tuple[Path, str, bool, ModelEntry, Located]] = []
    for path, is_inside in [(f, True) for f in inside] + [(p, False) for p in extra]:
        display = f"{models_dir.name}/{path.name}" if is_inside else _display(path, models_dir)
        checking = not explicit or (root / path.name if is_inside else path.resolve()) in explicit
        entry, located, file_problems = parse_file(path, display)
        if checking:
            problems.extend(file_problems)
        if entry is not None and located is not None:
            parsed.append((path, display, checking, entry, located))

    # A name belongs to the file named after it; any other file claiming it repeats it.
    owners: dict[str, str] = {}
    for _path, display, _, entry, _ in sorted(parsed, key=lambda p: (p[3].name != p[0].stem, p[1])):
        owners.setdefault(entry.name, display)
    for path, display, checking, entry, located in parsed:
        if owners[entry.name] != display:
            if checking:
                line, _ = located.locate(("name",))
                problems.append(Problem(display, line, "name", f"name {entry.name!r} repeats {owners[entry.name]}"))
            continue
        if checking:
            problems.extend(cross_checks(entry, located, path, display, stacks, models_dir))
        registry.models[entry.name] = entry
        registry.files[entry.name] = path
        registry.displays[entry.name] = display
        registry.located[entry.name] = located
    return registry, sorted(problems, key=lambda p: (p.file, p.line or 0, p.path, p.message))


def _display(path: Path, models_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(models_dir.resolve().parent))
    except ValueError:
        return str(path)


def load_registry(models_dir: Path, stacks: dict[str, StackSettings]) -> Registry:
    """The whole registry, or RegistryError listing every problem."""
    registry, problems = validate(models_dir, stacks)
    if problems:
        raise RegistryError(problems)
    return registry
