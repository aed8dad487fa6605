"""The deployment files match the code: Dockerfile, compose.yaml and Procfile.

No image can be built where the tests run (no container engine), so these files would rot
silently: a renamed flag or setting would only show on someone's server. The tests read the
files as their tools would (compose with a YAML parser, the Dockerfile and the Procfile line by
line) and check that every ``deepfakescan`` command they run is accepted by the CLI's own
parser, every ``DEEPFAKESCAN_*`` variable they set is one the settings read, the image runs as a
non-root user without PyTorch, and compose wires two web nodes and two workers to one broker,
one database and one data volume.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deepfakescan.cli import build_parser
from deepfakescan.config import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
PROCFILE = ROOT / "Procfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCALE_OUT_DOC = ROOT / "docs" / "scale-out.md"
PREFIX = "DEEPFAKESCAN_"
DEFAULT_RE = re.compile(r"\$\{(\w+):?-([^}]*)\}")


# --- the checkers ---------------------------------------------------------------------------


def cli_refusal(argv: list[str]) -> str | None:
    """None when ``deepfakescan`` accepts ``argv`` (the whole command line), else why not.

    Parsing is what the CLI does before running anything; ``--help`` and ``--version`` count
    as refusals, since a deployment command must run something, not print and exit.
    """
    if not argv or argv[0] != "deepfakescan":
        return f"not a deepfakescan command: {argv!r}"
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as e:
            return err.getvalue().strip() or f"exited with {e.code}"
    return None


def unknown_variables(names) -> list[str]:
    """``DEEPFAKESCAN_*`` names that no setting reads (a typo, or a setting since renamed)."""
    known = set(ENV_VARS.values())
    return sorted(n for n in names if n.startswith(PREFIX) and n not in known)


def with_defaults(text: str) -> str:
    """``${VAR:-default}`` (shell, compose) replaced by its default, as on a bare machine."""
    return DEFAULT_RE.sub(lambda m: m.group(2), text)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def final_stage(text: str) -> list[tuple[str, str]]:
    """The instructions of the last stage (from its FROM on): what the image runs."""
    instructions = dockerfile_instructions(text)
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    return instructions[starts[-1] :] if starts else []


def final_user(text: str) -> str:
    """The user the image's command runs as: the last stage's last USER, else root."""
    users = [args.split(":")[0] for kw, args in final_stage(text) if kw == "USER"]
    return users[-1] if users else "root"


def docker_argv(args: str) -> list[str]:
    """CMD/ENTRYPOINT arguments: exec form (a JSON list) or shell form."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def docker_env(text: str) -> dict[str, str]:
    """ENV of the last stage: ``ENV A=1 B=2`` and the legacy ``ENV A 1``."""
    env: dict[str, str] = {}
    for kw, args in final_stage(text):
        if kw != "ENV":
            continue
        if "=" not in args.split()[0]:
            name, _, value = args.partition(" ")
            env[name] = value.strip()
            continue
        for item in shlex.split(args):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def docker_cmd(text: str) -> list[str]:
    """ENTRYPOINT + CMD of the last stage, as the container runs them."""
    stage = final_stage(text)
    entry = [docker_argv(a) for kw, a in stage if kw == "ENTRYPOINT"]
    cmd = [docker_argv(a) for kw, a in stage if kw == "CMD"]
    return (entry[-1] if entry else []) + (cmd[-1] if cmd else [])


def procfile_entries(text: str) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Process type -> (leading ``VAR=value`` assignments, argv with shell defaults applied)."""
    entries = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        words = shlex.split(with_defaults(command), comments=True)
        env = {}
        while words and re.fullmatch(r"\w+=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        entries[name.strip()] = (env, words)
    return entries


def compose_env(service: dict) -> dict[str, str]:
    """A compose service's ``environment``, in its mapping or list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def compose_argv(service: dict, image_cmd: list[str]) -> list[str]:
    """What a service runs: its ``command``, or the Dockerfile's when it builds the image."""
    command = service.get("command")
    if command is None:
        return image_cmd if "build" in service else []
    return command if isinstance(command, list) else shlex.split(command)


def compose_mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a named volume or a host path), short and long syntax."""
    mounts = {}
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            mounts[item["target"]] = item.get("source", "")
        else:
            source, _, rest = item.partition(":")
            mounts[rest.split(":")[0]] = source
    return mounts


def scan_services(compose: dict, role: str, image_cmd: list[str]) -> dict[str, dict]:
    """The services running ``deepfakescan <role>`` (serve, worker)."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if compose_argv(svc, image_cmd)[:2] == ["deepfakescan", role]
    }


def replicas(service: dict) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


def effective_env(service: dict, image_env: dict[str, str]) -> dict[str, str]:
    """The image's ENV overlaid by the service's environment, shell defaults applied."""
    merged = {**image_env, **compose_env(service)}
    return {k: with_defaults(v) for k, v in merged.items()}


def pip_extras(text: str) -> set[str]:
    """Extras of the package installed by the Dockerfile's ``pip install ".[a,b]"``."""
    extras: set[str] = set()
    for kw, args in dockerfile_instructions(text):
        if kw == "RUN" and "pip install" in args:
            for group in re.findall(r"\.\[([\w,\s-]+)\]", args):
                extras |= {e.strip() for e in group.split(",")}
    return extras


def doc_commands(text: str) -> list[list[str]]:
    """``deepfakescan ...`` lines inside fenced shell blocks of a Markdown text."""
    commands, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside and line.strip() in ("```bash", "```sh", "```shell")
            continue
        words = shlex.split(line, comments=True) if inside else []
        while words and re.fullmatch(r"\w+=.*", words[0]):
            words.pop(0)
        if words[:1] == ["deepfakescan"]:
            commands.append(words)
    return commands


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def image_cmd(dockerfile) -> list[str]:
    return docker_cmd(dockerfile)


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def all_commands(dockerfile: str, compose: dict) -> dict[str, list[str]]:
    """Every command line the three files run, by where it comes from."""
    commands = {"Dockerfile CMD": docker_cmd(dockerfile)}
    for name, svc in compose["services"].items():
        argv = compose_argv(svc, docker_cmd(dockerfile))
        if argv[:1] == ["deepfakescan"]:
            commands[f"compose {name}"] = [with_defaults(a) for a in argv]
    for name, (_, argv) in procfile_entries(PROCFILE.read_text()).items():
        commands[f"Procfile {name}"] = argv
    return commands


# --- the checkers can fail ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["deepfakescan", "wurker"],
        ["deepfakescan", "serve", "--bogus-flag"],
        ["deepfakescan", "serve", "--port", "eighty"],
        ["deepfakescan", "serve", "--help"],
        ["gunicorn", "deepfakescan.web:create_app()"],
        [],
    ],
)
def test_the_command_checker_refuses_what_the_cli_refuses(argv):
    assert cli_refusal(argv) is not None


def test_the_command_checker_accepts_a_real_command():
    assert cli_refusal(["deepfakescan", "serve", "--host", "0.0.0.0", "--port", "8000"]) is None


def test_the_variable_checker_flags_an_unknown_setting():
    assert unknown_variables(["DEEPFAKESCAN_DATA_DIR", "DEEPFAKESCAN_DATADIR", "PATH"]) == [
        "DEEPFAKESCAN_DATADIR"
    ]


def test_the_user_checker_sees_root_and_earlier_stages():
    assert final_user("FROM a\nRUN x\nCMD y\n") == "root"
    assert final_user("FROM a AS b\nUSER app\nFROM c\nCMD y\n") == "root"  # USER of a build stage
    assert final_user("FROM a\nUSER app\nUSER 0:0\n") == "0"
    assert final_user("FROM a\n# USER app\nUSER \\\n  app:app\n") == "app"


def test_the_file_readers_understand_both_syntaxes():
    text = "FROM a\nENV A=1 \\\n    B='two words'\nENV C 3\nENTRYPOINT [\"x\"]\nCMD y --z\n"
    assert docker_env(text) == {"A": "1", "B": "two words", "C": "3"}
    assert docker_cmd(text) == ["x", "y", "--z"]
    assert procfile_entries("web: A=1 run --port ${PORT:-5000}\n") == {
        "web": ({"A": "1"}, ["run", "--port", "5000"])
    }
    svc = {"environment": ["A=1", "B"], "volumes": [{"target": "/d", "source": "v"}, "w:/e:ro"]}
    assert compose_env(svc) == {"A": "1", "B": ""}
    assert compose_mounts(svc) == {"/d": "v", "/e": "w"}


# --- every command runs, every variable is read ---------------------------------------------


def test_every_deepfakescan_command_in_the_deploy_files_exists_in_the_cli(dockerfile, compose):
    commands = all_commands(dockerfile, compose)
    assert {"Dockerfile CMD", "Procfile web", "Procfile worker"} <= set(commands)
    refused = {where: why for where, argv in commands.items() if (why := cli_refusal(argv))}
    assert not refused, f"the CLI refuses: {refused}"


def test_the_worker_command_with_a_concurrency_parses():
    assert cli_refusal(["deepfakescan", "worker", "--concurrency", "2"]) is None


def test_every_deepfakescan_variable_set_is_one_the_settings_read(dockerfile, compose):
    names = set(docker_env(dockerfile))
    for svc in compose["services"].values():
        names |= set(compose_env(svc))
    for env, _ in procfile_entries(PROCFILE.read_text()).values():
        names |= set(env)
    assert any(n.startswith(PREFIX) for n in names)
    assert not unknown_variables(names), f"no setting reads {unknown_variables(names)}"


def test_every_scan_service_environment_is_valid_settings(dockerfile, compose, image_cmd):
    image_env = docker_env(dockerfile)
    for role in ("serve", "worker"):
        for name, svc in scan_services(compose, role, image_cmd).items():
            env = effective_env(svc, image_env)
            settings = Settings.from_env({k: v for k, v in env.items() if k.startswith(PREFIX)})
            assert settings.broker_url and settings.database_url, name


def test_commands_in_the_scale_out_docs_exist_in_the_cli():
    readme = (ROOT / "README.md").read_text()
    texts = [readme.partition("## Scale out")[2].partition("\n## ")[0]]
    texts += [SCALE_OUT_DOC.read_text()] if SCALE_OUT_DOC.exists() else []
    commands = [argv for text in texts for argv in doc_commands(text)]
    refused = {" ".join(argv): why for argv in commands if (why := cli_refusal(argv))}
    assert not refused, f"the CLI refuses: {refused}"


# --- the image ------------------------------------------------------------------------------


def test_the_image_runs_as_a_non_root_user(dockerfile):
    assert final_user(dockerfile) not in ("root", "0")


def test_the_image_serves_on_all_interfaces_from_the_data_volume(dockerfile):
    stage = final_stage(dockerfile)
    assert stage[0] == ("FROM", "python:3.11-slim")
    assert docker_cmd(dockerfile) == ["deepfakescan", "serve", "--host", "0.0.0.0"]
    data_dir = docker_env(dockerfile)["DEEPFAKESCAN_DATA_DIR"]
    volumes = [
        json.loads(a) if a.startswith("[") else a.split() for kw, a in stage if kw == "VOLUME"
    ]
    assert data_dir in [v for group in volumes for v in group]


def test_the_image_installs_the_scale_extra_and_no_torch(dockerfile, pyproject):
    extras = pip_extras(dockerfile)
    declared = pyproject["project"]["optional-dependencies"]
    assert "scale" in extras
    assert extras <= set(declared), f"the Dockerfile installs unknown extras {extras}"
    requirements = pyproject["project"]["dependencies"] + [r for e in extras for r in declared[e]]
    names = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}
    assert "torch" not in names, "serving runs on ONNX Runtime: torch belongs to [train]"
    assert {"celery", "psycopg"} <= names


def test_the_models_travel_inside_the_package(dockerfile, pyproject):
    copied = [a.split() for kw, a in final_stage(dockerfile) if kw == "COPY"]
    assert any("/opt/deepfakescan" in args for args in copied)
    package_data = pyproject["tool"]["setuptools"]["package-data"]["deepfakescan"]
    assert {"models/*.onnx", "models/*.json"} <= set(package_data)
    assert list((ROOT / "src" / "deepfakescan" / "models").glob("*.onnx"))


def test_what_the_dockerfile_copies_exists_and_is_not_ignored(dockerfile):
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= ignored
    for kw, args in dockerfile_instructions(dockerfile):
        if kw != "COPY" or args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] not in ignored, f"{source} is in .dockerignore"


# --- compose --------------------------------------------------------------------------------


def test_compose_runs_two_web_nodes_and_two_workers(compose, image_cmd):
    web = scan_services(compose, "serve", image_cmd)
    workers = scan_services(compose, "worker", image_cmd)
    assert sum(replicas(s) for s in web.values()) == 2
    assert sum(replicas(s) for s in workers.values()) == 2
    for name, svc in web.items():
        argv = compose_argv(svc, image_cmd)
        assert argv[argv.index("--host") + 1] == "0.0.0.0", name
        assert svc.get("ports"), f"{name} publishes no port"


def _service_with_image(compose: dict, prefix: str) -> tuple[str, dict]:
    found = [
        (n, s) for n, s in compose["services"].items() if s.get("image", "").startswith(prefix)
    ]
    assert len(found) == 1, f"one {prefix} service expected, found {[n for n, _ in found]}"
    return found[0]


def test_redis_keeps_queued_scans_across_a_restart(compose):
    _, redis = _service_with_image(compose, "redis")
    argv = compose_argv(redis, [])
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert "/data" in compose_mounts(redis)
    assert redis.get("healthcheck")


def test_postgres_keeps_its_data_on_a_volume_and_reports_health(compose):
    _, postgres = _service_with_image(compose, "postgres")
    source = compose_mounts(postgres).get("/var/lib/postgresql/data")
    assert source in (compose.get("volumes") or {})
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_every_scan_process_shares_one_data_volume_broker_and_database(
    compose, dockerfile, image_cmd
):
    redis_name, _ = _service_with_image(compose, "redis")
    postgres_name, postgres = _service_with_image(compose, "postgres")
    services = {
        **scan_services(compose, "serve", image_cmd),
        **scan_services(compose, "worker", image_cmd),
    }
    sources, brokers, databases = set(), set(), set()
    for name, svc in services.items():
        env = effective_env(svc, docker_env(dockerfile))
        sources.add(compose_mounts(svc).get(env["DEEPFAKESCAN_DATA_DIR"]))
        brokers.add(env["DEEPFAKESCAN_BROKER_URL"])
        databases.add(env["DEEPFAKESCAN_DATABASE_URL"])
        assert {redis_name, postgres_name} <= set(svc.get("depends_on") or {}), name
    assert len(sources) == 1 and sources <= set(compose.get("volumes") or {}), sources
    assert len(brokers) == 1 and len(databases) == 1
    broker, database = urlsplit(brokers.pop()), urlsplit(databases.pop())
    assert (broker.scheme, broker.hostname) == ("redis", redis_name)
    assert (database.scheme.split("+")[0], database.hostname) == ("postgresql", postgres_name)
    pg_env = {k: with_defaults(v) for k, v in compose_env(postgres).items()}
    assert database.username == pg_env["POSTGRES_USER"]
    assert database.password == pg_env["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == pg_env["POSTGRES_DB"]


def test_variables_named_in_the_scale_out_docs_are_settings():
    readme = (ROOT / "README.md").read_text()
    text = readme.partition("## Scale out")[2].partition("\n## ")[0] + SCALE_OUT_DOC.read_text()
    named = set(re.findall(r"\bDEEPFAKESCAN_[A-Z_]+\b", text))
    assert "DEEPFAKESCAN_BROKER_URL" in named
    assert not unknown_variables(named), f"no setting reads {unknown_variables(named)}"
