"""The Dockerfile's promises (SPEC.md, "Set-up"), checked by reading it: there is no Docker engine here.

The image must run the same install step as `make run`, as a non-root user, with all state on /data,
listening on 0.0.0.0:8080 and health-checked on /healthz.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MAKEFILE = ROOT / "Makefile"

# pip options that change how pip runs, not what it installs.
PIP_QUIET_OPTIONS = {"--no-cache-dir", "--disable-pip-version-check", "-q", "--quiet"}


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and backslash continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a backslash continuation"
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), f"no Dockerfile at {DOCKERFILE}"
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def only(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in instructions if kw == keyword]


def env_vars(instructions: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for args in only(instructions, "ENV"):
        tokens = shlex.split(args)
        if tokens and "=" not in tokens[0]:  # legacy form: ENV NAME value
            values[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            name, _, value = token.partition("=")
            values[name] = value
    return values


def exec_form(args: str, what: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(
            f"{what} should use the exec (JSON array) form so signals reach the process, got {args!r}"
        )
    assert isinstance(value, list), f"{what} should be a JSON array, got {args!r}"
    return value


def pip_install_args(command: str) -> list[str]:
    """What a pip command installs: the words after `install`, minus options that only affect output/caching."""
    words = shlex.split(command)
    assert "install" in words, f"not a pip install command: {command!r}"
    after = words[words.index("install") + 1 :]
    return [word for word in after if word not in PIP_QUIET_OPTIONS]


def makefile_install_command() -> str:
    """The recipe of the $(VENV)/.installed rule: the install step `make run` performs."""
    lines = MAKEFILE.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.startswith("$(VENV)/.installed:"):
            for recipe in lines[index + 1 :]:
                if not recipe.startswith("\t"):
                    break
                if " install " in recipe and "--upgrade" not in recipe:
                    return recipe.strip()
    pytest.fail("the Makefile has no `$(VENV)/.installed` rule with a pip install line")


def test_base_image_is_slim_python_311(instructions: list[tuple[str, str]]) -> None:
    bases = only(instructions, "FROM")
    assert len(bases) >= 1, "the Dockerfile has no FROM line"
    final = bases[-1].split()[0]
    assert re.fullmatch(r"python:3\.1[1-9](\.\d+)?-slim(-\w+)?", final), (
        f"the runtime image should be a slim Python 3.11+ image (python:3.11-slim), got {final!r}"
    )


def test_runs_as_non_root_user_set_before_cmd(instructions: list[tuple[str, str]]) -> None:
    keywords = [kw for kw, _ in instructions]
    assert "USER" in keywords, "no USER instruction: the panel would run as root"
    assert "CMD" in keywords, "no CMD instruction"
    last_user_index = max(i for i, kw in enumerate(keywords) if kw == "USER")
    assert last_user_index < keywords.index("CMD"), (
        "USER must come before CMD so the panel starts as that user"
    )
    user = instructions[last_user_index][1].split(":")[0]
    assert user not in {"root", "0"}, f"the final USER is {user!r}; the panel must not run as root"


def test_data_volume_is_owned_by_the_user(instructions: list[tuple[str, str]]) -> None:
    volumes = " ".join(only(instructions, "VOLUME"))
    assert re.search(r"(^|[\s\[\"])/data([\s\]\"]|$)", volumes), f"VOLUME /data missing (got {volumes!r})"
    user = only(instructions, "USER")[-1].split(":")[0]
    runs = " ".join(only(instructions, "RUN"))
    assert re.search(rf"chown\s+(-R\s+)?{re.escape(user)}(:\S+)?\s+(\S+\s+)*/data\b", runs), (
        f"/data must be created and chowned to {user!r} before VOLUME, or the non-root user cannot write it"
    )


def test_environment_points_at_the_volume_and_all_interfaces(instructions: list[tuple[str, str]]) -> None:
    env = env_vars(instructions)
    assert env.get("NOX_DATA_DIR") == "/data", (
        f"NOX_DATA_DIR should be /data, got {env.get('NOX_DATA_DIR')!r}"
    )
    assert env.get("NOX_HOST") == "0.0.0.0", (
        f"NOX_HOST should be 0.0.0.0 so `docker run -p` reaches the panel, got {env.get('NOX_HOST')!r}"
    )
    assert env.get("NOX_PORT", "8080") == "8080", f"NOX_PORT should be 8080, got {env.get('NOX_PORT')!r}"


def test_exposes_8080(instructions: list[tuple[str, str]]) -> None:
    ports = " ".join(only(instructions, "EXPOSE")).split()
    assert "8080" in ports or "8080/tcp" in ports, f"EXPOSE 8080 missing (got {ports})"


def test_healthcheck_hits_healthz_without_curl(instructions: list[tuple[str, str]]) -> None:
    checks = only(instructions, "HEALTHCHECK")
    assert checks, "no HEALTHCHECK instruction"
    check = checks[-1]
    assert "CMD" in check, f"HEALTHCHECK should run a command, got {check!r}"
    assert "/healthz" in check, f"HEALTHCHECK should request /healthz, got {check!r}"
    assert "127.0.0.1" in check or "localhost" in check, (
        f"HEALTHCHECK should ask the local server, got {check!r}"
    )
    assert "urllib" in check, "HEALTHCHECK should use Python's urllib: python:*-slim has no curl or wget"
    assert "curl" not in check and "wget" not in check, f"curl/wget are not in the slim image: {check!r}"


def test_cmd_is_nox_ui_serve(instructions: list[tuple[str, str]]) -> None:
    cmds = only(instructions, "CMD")
    assert cmds, "no CMD instruction"
    assert exec_form(cmds[-1], "CMD") == ["nox-ui", "serve"], (
        f'CMD should be ["nox-ui", "serve"], got {cmds[-1]}'
    )
    assert not only(instructions, "ENTRYPOINT"), "an ENTRYPOINT would change what CMD runs"


def test_install_step_matches_make_run(instructions: list[tuple[str, str]]) -> None:
    make_args = pip_install_args(makefile_install_command())
    assert make_args == ["-e", "."], f"the Makefile's install rule changed ({make_args}); update this test"
    pip_runs = [args for args in only(instructions, "RUN") if re.search(r"\bpip\b.*\binstall\b", args)]
    assert len(pip_runs) == 1, f"expected exactly one pip install step in the Dockerfile, found {pip_runs}"
    docker_args = pip_install_args(pip_runs[0])
    assert docker_args == make_args, (
        f"the image installs {docker_args} but `make run` installs {make_args}: keep them the same step"
    )


def test_dockerignore_keeps_local_state_out() -> None:
    assert DOCKERIGNORE.is_file(), f"no .dockerignore at {DOCKERIGNORE}"
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert ".venv" in patterns, "the .dockerignore must exclude .venv (a host venv does not run in the image)"
    assert patterns & {"data", "data/*", "data/**"}, (
        "the .dockerignore must exclude data/ (the local database and secret.key must not enter the image)"
    )
    assert ".git" in patterns, "the .dockerignore should exclude .git"
    for needed in ("README.md", "pyproject.toml", "nox_ui", "pages", "components"):
        assert needed not in patterns, f"{needed} is needed by `pip install -e .` and must not be ignored"
