"""The Dockerfile's own lint rules (hadolint is not packaged), each shown failing on a bad file."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN", re.IGNORECASE)
BUILD_TOOLS = re.compile(r"^(build-essential|gcc|g\+\+|clang|make|cmake|.+-dev)$")
SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts
    keyword: str
    arguments: str  # continuation lines joined, comment lines left out


@dataclass
class Stage:
    line: int
    image: str  # global ARGs substituted, as the builder does
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, *keywords: str) -> list[Instruction]:
        return [found for found in self.instructions if found.keyword in keywords]


def _escape_character(lines: list[str]) -> str:
    """The `# escape=` parser directive; directives count only before anything else."""
    for line in lines:
        directive = re.fullmatch(r"#\s*(\w+)\s*=\s*(\S+)\s*", line)
        if directive is None:
            break
        if directive[1].lower() == "escape":
            return directive[2]
    return "\\"


def parse(text: str) -> list[Instruction]:
    """Instructions as the builder reads them: a line ending in the escape character goes on,
    and a line whose first non-blank character is `#` is a comment, inside a continuation
    too. Heredocs are refused rather than misread."""
    lines = text.splitlines()
    escape = _escape_character(lines)
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not parts:
            start = number
        body = line.rstrip()
        parts.append(body.removesuffix(escape))
        if not body.endswith(escape):
            found.append(_instruction(start, "".join(parts)))
            parts = []
    if parts:
        found.append(_instruction(start, "".join(parts)))
    return found


def _instruction(line: int, joined: str) -> Instruction:
    keyword, _, arguments = joined.strip().partition(" ")
    if re.search(r"<<-?[\"']?\w+", arguments) and keyword.upper() in {"RUN", "COPY"}:
        raise ValueError(f"line {line}: heredocs are not parsed here")
    return Instruction(line, keyword.upper(), arguments.strip())


def _substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda match: variables.get(match[1] or match[2], match[0]),
        text,
    )


def stages(instructions: list[Instruction]) -> list[Stage]:
    global_args: dict[str, str] = {}
    found: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [word for word in instruction.arguments.split() if not word.startswith("--")]
            image = _substitute(words[0], global_args)
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else str(len(found))
            found.append(Stage(instruction.line, image, name))
        elif found:
            found[-1].instructions.append(instruction)
        elif instruction.keyword == "ARG":
            # An ARG without a default leaves its name in the FROM, for the rule to report.
            defaults = _assignments(instruction.arguments).items()
            global_args.update({name: value for name, value in defaults if value})
    return found


def _assignments(arguments: str) -> dict[str, str]:
    """ENV and ARG: name=value pairs, ARG's bare names, and ENV's older `name value` form."""
    words = shlex.split(arguments)
    if words and "=" not in words[0] and len(words) > 1:
        return {words[0]: " ".join(words[1:])}
    return {name: value for name, _, value in (word.partition("=") for word in words)}


def commands(run: Instruction) -> Iterator[list[str]]:
    """The simple commands of a RUN, split at the shell's operators."""
    if run.arguments.startswith("["):
        yield json.loads(run.arguments)
        return
    lexer = shlex.shlex(run.arguments, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    command: list[str] = []
    for token in lexer:
        if token in SHELL_OPERATORS:
            yield command
            command = []
        else:
            command.append(token)
    yield command


def _runs(command: list[str], *program: str) -> bool:
    """Whether `command` runs `program` (`pip install` as `pip3 install` or
    `python -m pip install` too)."""
    names = [re.sub(r"^(pip)3?(\.\d+)?$", r"\1", Path(word).name) for word in command]
    return any(names[n : n + len(program)] == list(program) for n in range(len(names)))


def _every_command(dockerfile: list[Stage]) -> Iterator[tuple[Instruction, list[str]]]:
    for stage in dockerfile:
        for run in stage.of("RUN"):
            for command in commands(run):
                yield run, command


# The rules: each takes the parsed stages and returns its problems, one sentence each.


def has_a_build_stage_and_a_runtime_stage(dockerfile: list[Stage]) -> list[str]:
    if len(dockerfile) >= 2:
        return []
    return ["one stage: build (uv, sources) in one and copy only the venv into another"]


def bases_are_pinned(dockerfile: list[Stage]) -> list[str]:
    problems = []
    for n, stage in enumerate(dockerfile):
        if stage.image == "scratch" or stage.image in {s.name for s in dockerfile[:n]}:
            continue
        if "@sha256:" in stage.image:
            continue
        repository, _, tag = stage.image.rpartition(":")
        if "$" in stage.image:
            problems.append(f"line {stage.line}: {stage.image} names an ARG with no default")
        elif not repository or "/" in tag:
            problems.append(f"line {stage.line}: {stage.image} has no tag; pin a version")
        elif tag == "latest" or not re.search(r"\d", tag):
            problems.append(f"line {stage.line}: {stage.image} names no version; pin one")
    return problems


def stages_share_the_interpreter(dockerfile: list[Stage]) -> list[str]:
    """The venv the build stage makes links to the base image's python."""
    if len({stage.image for stage in dockerfile[-2:]}) == 1:
        return []
    return [f"the last two stages start from {[stage.image for stage in dockerfile[-2:]]}"]


def final_stage_runs_as_non_root(dockerfile: list[Stage]) -> list[str]:
    final = dockerfile[-1]
    users = final.of("USER")
    starts = final.of("CMD", "ENTRYPOINT")
    if not users:
        return [f"the final stage (line {final.line}) has no USER: it would run as root"]
    if starts and users[0].line > starts[0].line:
        return [f"line {starts[0].line}: {starts[0].keyword} comes before any USER"]
    user = users[-1].arguments.split(":")[0]
    if user in {"root", "0"}:
        return [f"line {users[-1].line}: USER {users[-1].arguments} is root"]
    return []


def copies_rather_than_adds(dockerfile: list[Stage]) -> list[str]:
    problems = []
    for stage in dockerfile:
        for add in stage.of("ADD"):
            sources = [w for w in shlex.split(add.arguments) if not w.startswith("--")][:-1]
            local = [source for source in sources if not re.match(r"https?://|git@", source)]
            if local:
                problems.append(f"line {add.line}: ADD {local}: use COPY for local files")
    return problems


def apt_installs_are_lean(dockerfile: list[Stage]) -> list[str]:
    problems = []
    for run, command in _every_command(dockerfile):
        if not (_runs(command, "apt-get", "install") or _runs(command, "apt", "install")):
            continue
        if "--no-install-recommends" not in command:
            problems.append(f"line {run.line}: apt-get install without --no-install-recommends")
        if not any(_removes_apt_lists(other) for other in commands(run)):
            problems.append(f"line {run.line}: apt lists not removed in the same RUN")
    return problems


def _removes_apt_lists(command: list[str]) -> bool:
    return command[:1] == ["rm"] and any(w.startswith("/var/lib/apt/lists") for w in command)


def installs_exactly_the_lock(dockerfile: list[Stage]) -> list[str]:
    problems, synced = [], False
    for run, command in _every_command(dockerfile):
        if _runs(command, "uv", "sync"):
            synced = True
            if "--locked" not in command:
                problems.append(f"line {run.line}: uv sync without --locked")
        elif _runs(command, "pip", "install") and "--require-hashes" not in command:
            problems.append(f"line {run.line}: pip install without --require-hashes")
    if not synced:
        problems.append("nothing installs uv.lock (uv sync --locked)")
    return problems


def final_stage_has_no_build_tools(dockerfile: list[Stage]) -> list[str]:
    final = dockerfile[-1]
    problems = []
    for run in final.of("RUN"):
        for command in commands(run):
            if _runs(command, "pip", "install") or _runs(command, "uv"):
                problems.append(f"line {run.line}: the final stage installs Python packages")
            if _runs(command, "apt-get", "install") or _runs(command, "apt", "install"):
                tools = [word for word in command if BUILD_TOOLS.match(word)]
                if tools:
                    problems.append(f"line {run.line}: the final stage installs {tools}")
    if not any("--from=" in copy.arguments for copy in final.of("COPY")):
        problems.append("the final stage copies nothing from the build stage")
    return problems


def starts_in_exec_form(dockerfile: list[Stage]) -> list[str]:
    """A shell form runs the process under /bin/sh, which does not pass on SIGTERM."""
    problems = []
    for stage in dockerfile:
        for start in stage.of("CMD", "ENTRYPOINT"):
            try:
                words = json.loads(start.arguments)
            except json.JSONDecodeError:
                words = None
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                problems.append(f"line {start.line}: {start.keyword} is not a JSON array")
    return problems


def holds_no_secrets(dockerfile: list[Stage]) -> list[str]:
    """An ENV or ARG value stays in the image's history for anyone who pulls it."""
    problems = []
    for stage in dockerfile:
        for assign in stage.of("ENV", "ARG"):
            for name, value in _assignments(assign.arguments).items():
                if SECRET_NAME.search(name) and value:
                    problems.append(f"line {assign.line}: {assign.keyword} {name} has a value")
    return problems


Rule = Callable[[list[Stage]], list[str]]
RULES: dict[str, Rule] = {
    rule.__name__: rule
    for rule in (
        has_a_build_stage_and_a_runtime_stage,
        bases_are_pinned,
        stages_share_the_interpreter,
        final_stage_runs_as_non_root,
        copies_rather_than_adds,
        apt_installs_are_lean,
        installs_exactly_the_lock,
        final_stage_has_no_build_tools,
        starts_in_exec_form,
        holds_no_secrets,
    )
}

GOOD_BUILD = """FROM python:3.11.13-slim AS build
RUN uv sync --locked
"""
GOOD_RUNTIME = """FROM python:3.11.13-slim
COPY --from=build /opt/venv /opt/venv
USER 10001
CMD ["conveyor", "api"]
"""
BAD: list[tuple[str, str]] = [
    ("has_a_build_stage_and_a_runtime_stage", "FROM python:3.11.13-slim\nRUN uv sync --locked"),
    ("bases_are_pinned", GOOD_BUILD + GOOD_RUNTIME.replace("3.11.13-slim", "latest")),
    ("bases_are_pinned", GOOD_BUILD + GOOD_RUNTIME.replace(":3.11.13-slim", "")),
    ("bases_are_pinned", GOOD_BUILD + GOOD_RUNTIME.replace("3.11.13-slim", "slim")),
    ("bases_are_pinned", "ARG BASE\nFROM ${BASE} AS build\nFROM build"),
    ("stages_share_the_interpreter", GOOD_BUILD + GOOD_RUNTIME.replace("3.11.13", "3.12.9")),
    ("final_stage_runs_as_non_root", GOOD_BUILD + GOOD_RUNTIME.replace("USER 10001\n", "")),
    ("final_stage_runs_as_non_root", GOOD_BUILD + GOOD_RUNTIME.replace("10001", "root")),
    ("final_stage_runs_as_non_root", GOOD_BUILD + GOOD_RUNTIME + "USER 0:0\n"),
    (
        "final_stage_runs_as_non_root",
        GOOD_BUILD + GOOD_RUNTIME.replace("USER 10001\n", "") + "USER 10001\n",
    ),
    ("copies_rather_than_adds", GOOD_BUILD.replace("RUN", "ADD src /app/src\nRUN")),
    (
        "apt_installs_are_lean",
        GOOD_BUILD + "RUN apt-get update \\\n    && apt-get install -y libpq5\n",
    ),
    ("installs_exactly_the_lock", GOOD_BUILD.replace(" --locked", "")),
    ("installs_exactly_the_lock", GOOD_BUILD + "RUN python -m pip install uv==0.13.9\n"),
    ("final_stage_has_no_build_tools", GOOD_BUILD + GOOD_RUNTIME + "RUN pip3 install uv\n"),
    (
        "final_stage_has_no_build_tools",
        GOOD_BUILD
        + GOOD_RUNTIME.replace(
            "USER",
            "RUN apt-get install -y --no-install-recommends gcc libpq-dev \\\n"
            " && rm -rf /var/lib/apt/lists/*\nUSER",
        ),
    ),
    ("final_stage_has_no_build_tools", GOOD_BUILD + GOOD_RUNTIME.replace("--from=build ", "")),
    ("starts_in_exec_form", GOOD_BUILD + GOOD_RUNTIME.replace('["conveyor", "api"]', "conveyor")),
    ("holds_no_secrets", GOOD_BUILD.replace("RUN", "ENV API_KEYS=ops:k:admin\nRUN")),
    ("holds_no_secrets", GOOD_BUILD.replace("RUN", "ARG PYPI_TOKEN=pypi-abc\nRUN")),
    ("holds_no_secrets", GOOD_BUILD.replace("RUN", "ENV SMTP_PASSWORD hunter2\nRUN")),
]


@pytest.mark.parametrize("rule", RULES)
def test_the_dockerfile_follows(rule: str) -> None:
    problems = RULES[rule](stages(parse(DOCKERFILE.read_text())))
    assert not problems, f"Dockerfile breaks {rule}: " + "; ".join(problems)


@pytest.mark.parametrize(
    ("rule", "text"), BAD, ids=[f"{rule}-{n}" for n, (rule, _) in enumerate(BAD)]
)
def test_each_rule_catches_a_dockerfile_that_breaks_it(rule: str, text: str) -> None:
    dockerfile = stages(parse(text))
    assert RULES[rule](dockerfile), f"{rule} let this through:\n{text}"
    assert not RULES[rule](stages(parse(GOOD_BUILD + GOOD_RUNTIME))), "and the good one passes"


def test_every_rule_has_a_bad_example() -> None:
    assert set(RULES) == {rule for rule, _ in BAD}


def test_the_parser_reads_continuations_comments_and_the_escape_directive() -> None:
    text = """# escape=`
# the builder's comment
FROM python:3.11.13-slim AS build
RUN apt-get update `
    # a comment inside a continuation is left out
    && apt-get install -y --no-install-recommends git
ENV A=1 `
    B="two words"
"""
    found = parse(text)
    assert [(i.line, i.keyword) for i in found] == [(3, "FROM"), (4, "RUN"), (7, "ENV")]
    assert "comment" not in found[1].arguments
    assert ["apt-get", "install", "-y", "--no-install-recommends", "git"] in commands(found[1])
    assert _assignments(found[2].arguments) == {"A": "1", "B": "two words"}


def test_the_parser_refuses_a_heredoc_it_would_misread() -> None:
    with pytest.raises(ValueError, match="heredoc"):
        parse("FROM python:3.11.13-slim\nRUN <<EOF\necho hi\nEOF\n")


def test_the_build_context_leaves_out_the_checkout_s_own_state_and_secrets() -> None:
    ignored = {
        line.strip()
        for line in (DOCKERFILE.parent / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".uv", "data", ".env"} <= ignored
    # What the Dockerfile copies must not be ignored.
    copied = {"requirements-uv.txt", "pyproject.toml", "uv.lock", "README.md", "src"}
    assert not copied & ignored
