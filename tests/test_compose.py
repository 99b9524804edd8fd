"""docker-compose.yml, the Dockerfile and .dockerignore: their shape, and their commands run.

No Docker engine is needed. The commands the containers run are read from those files;
the container's paths are mapped to a temporary directory and its database URL to a
real database (a SQLite file; PostgreSQL when ``WATCHER_TEST_POSTGRES_URL`` is set),
and each command runs here as a subprocess of the installed ``watcher``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import create_engine, make_url, text

from tests.servers import free_port
from watcher.daemon import SHUTDOWN_GRACE_SECONDS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONTAINER_CONFIG = "/config/watcher.yaml"
POSTGRES_URL = os.environ.get("WATCHER_TEST_POSTGRES_URL")
# Set for the interpreter, not read by SIM Watcher.
RUNTIME_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
COMMAND_TIMEOUT = 120


# --- reading the files ---------------------------------------------------------------


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml with ``${VAR:-default}`` interpolated from ``env`` (default: none)."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return _interpolate(loaded, {} if env is None else env)  # type: ignore[no-any-return]


_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def _interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1) or match.group(3)
            return env.get(name) or match.group(2) or ""

        return _COMPOSE_VARIABLE.sub(replace, value)
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    return value


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    """A service's volumes, short (``src:dst:ro``) or long syntax alike."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found.append(Mount(source, target, bool(mode) and "ro" in mode[0].split(",")))
        else:
            found.append(
                Mount(volume["source"], volume["target"], bool(volume.get("read_only", False)))
            )
    return found


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):  # the string form runs in a shell
        return shlex.split(test)
    kind, *argv = test
    if kind == "CMD-SHELL":
        return shlex.split(argv[0])
    assert kind == "CMD", f"unexpected healthcheck form {kind!r}"
    return list(argv)


def seconds(duration: str) -> float:
    """A compose duration such as ``15s`` or ``1m30s``."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


@dataclass(frozen=True)
class Image:
    """What the final stage of the Dockerfile sets up."""

    base: str
    env: dict[str, str]
    user: str | None
    workdir: str | None
    entrypoint: list[str]
    cmd: list[str]
    healthcheck_options: dict[str, str]
    healthcheck: list[str]
    copied: list[str]  # COPY sources taken from the build context, all stages


def dockerfile_instructions() -> list[tuple[str, str]]:
    instructions = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines inside a continued instruction too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def image() -> Image:
    instructions = dockerfile_instructions()
    copied = []
    for keyword, arguments in instructions:
        if keyword in ("COPY", "ADD"):
            words = shlex.split(arguments)
            if not any(word.startswith("--from=") for word in words):
                copied += [word for word in words[:-1] if not word.startswith("--")]
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    base = instructions[last_from][1].split()[0]
    env: dict[str, str] = {}
    user = workdir = None
    entrypoint: list[str] = []
    cmd: list[str] = []
    options: dict[str, str] = {}
    check: list[str] = []
    for keyword, arguments in instructions[last_from + 1 :]:
        if keyword == "ENV":
            words = shlex.split(arguments)
            if "=" in words[0]:
                env.update(word.partition("=")[::2] for word in words)
            else:  # the legacy ``ENV NAME value`` form
                env[words[0]] = arguments.split(None, 1)[1]
        elif keyword == "USER":
            user = arguments
        elif keyword == "WORKDIR":
            workdir = arguments
        elif keyword == "ENTRYPOINT":
            entrypoint = _argv(arguments)
        elif keyword == "CMD":
            cmd = _argv(arguments)
        elif keyword == "HEALTHCHECK":
            flags, found, command = arguments.partition("CMD ")
            assert found, f"HEALTHCHECK without CMD: {arguments}"
            options = dict(flag.removeprefix("--").split("=", 1) for flag in flags.split())
            check = _argv(command)
    return Image(base, env, user, workdir, entrypoint, cmd, options, check, copied)


def _argv(arguments: str) -> list[str]:
    """What Docker runs for an exec-form (JSON) or shell-form instruction."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", arguments]
    assert isinstance(argv, list), arguments
    return [str(word) for word in argv]


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) pairs in file order; the last one that matches wins."""
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        rules.append((excludes, re.compile(_glob(line.removeprefix("!").strip().strip("/")))))
    return rules


def _glob(pattern: str) -> str:
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return regex + r"\Z"


def in_build_context(path: str) -> bool:
    """Whether Docker sends ``path`` (relative to the repository) with the build context.

    As in Docker, a pattern that matches a directory applies to everything inside it.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    included = True
    for excludes, pattern in dockerignore_rules():
        if any(pattern.match(prefix) for prefix in prefixes):
            included = not excludes
    return included


def code_reads(name: str) -> bool:
    quoted = re.compile(rf"[\"']{re.escape(name)}[\"']")
    return any(quoted.search(p.read_text(encoding="utf-8")) for p in _sources())


def _sources() -> list[Path]:
    return sorted((ROOT / "watcher").rglob("*.py"))


# --- the files' structure ------------------------------------------------------------


def test_compose_runs_the_watcher_built_here_and_postgres_16() -> None:
    services = compose()["services"]

    assert set(services) == {"watcher", "db", "browser"}
    assert services["watcher"]["build"] in (".", {"context": "."})
    assert services["db"]["image"] == "postgres:16-alpine"


def test_the_browser_starts_only_when_asked_for_and_is_not_published() -> None:
    browser = compose()["services"]["browser"]

    # `docker compose up` without --profile browser leaves it out, so the watcher
    # cannot depend on it; it is reached by its service name from watcher.yaml.
    assert browser["profiles"] == ["browser"]
    assert "browser" not in compose()["services"]["watcher"].get("depends_on", {})
    assert "ports" not in browser
    assert "browser_url: ws://browser:3000" in COMPOSE_FILE.read_text(encoding="utf-8")


def test_watcher_starts_only_once_the_database_is_healthy() -> None:
    services = compose()["services"]

    assert services["watcher"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "healthcheck" in services["db"]


def test_both_services_restart_unless_stopped() -> None:
    for name, service in compose()["services"].items():
        assert service.get("restart") == "unless-stopped", name


def test_watcher_mounts_its_config_read_only_where_the_image_looks_for_it() -> None:
    watcher = compose()["services"]["watcher"]

    assert mounts(watcher) == [Mount("./watcher.yaml", CONTAINER_CONFIG, read_only=True)]
    # A missing ./watcher.yaml must fail the start, not become an empty directory.
    volume = watcher["volumes"][0]
    assert isinstance(volume, dict), "the long syntax is needed for create_host_path"
    assert volume["bind"]["create_host_path"] is False
    assert image().env["WATCHER_CONFIG"] == CONTAINER_CONFIG


@pytest.mark.parametrize(
    ("env", "password"),
    [({}, "watcher"), ({"POSTGRES_PASSWORD": "s3cret-pw"}, "s3cret-pw")],
)
def test_database_url_reaches_the_db_service_with_its_credentials(
    env: dict[str, str], password: str
) -> None:
    services = compose(env)["services"]
    db = service_env(services["db"])

    url = make_url(service_env(services["watcher"])["WATCHER_DATABASE_URL"])

    assert url.drivername == "postgresql+psycopg"  # the driver pyproject installs
    assert (url.host, url.port) == ("db", 5432)
    assert url.username == db["POSTGRES_USER"]
    assert url.password == db["POSTGRES_PASSWORD"] == password
    assert url.database == db["POSTGRES_DB"]


def test_database_keeps_its_data_in_a_named_volume() -> None:
    config = compose()
    data = [m for m in mounts(config["services"]["db"]) if m.target == "/var/lib/postgresql/data"]

    assert len(data) == 1
    assert data[0].source in config["volumes"]


def test_db_healthcheck_asks_postgres_over_tcp_for_the_watcher_database() -> None:
    db = compose()["services"]["db"]
    argv = healthcheck_argv(db)
    env = service_env(db)

    assert argv[0] == "pg_isready"
    # Over TCP: during first-time setup postgres serves only its Unix socket, briefly.
    assert argv[argv.index("-h") + 1] in ("127.0.0.1", "localhost")
    assert argv[argv.index("-U") + 1] == env["POSTGRES_USER"]
    assert argv[argv.index("-d") + 1] == env["POSTGRES_DB"]


def test_the_images_health_check_asks_the_database() -> None:
    # For a plain `docker run` of the image, which serves no HTTP.
    assert image().healthcheck == ["watcher", "health", "-c", CONTAINER_CONFIG]


def test_compose_turns_http_on_and_its_health_check_asks_the_daemon_there() -> None:
    watcher = compose()["services"]["watcher"]
    command = watcher["command"]
    listen = command[command.index("--http") + 1]
    check = healthcheck_argv(watcher)

    assert command[: command.index("--http")] == image().cmd  # the image's command, plus
    assert listen.startswith("0.0.0.0:")  # reachable by Prometheus in the network
    assert "ports" not in watcher  # and by nothing outside it
    assert check == ["watcher", "health", "--http", f"127.0.0.1:{listen.rpartition(':')[2]}"]
    assert seconds(watcher["healthcheck"]["start_period"]) > 0
    assert seconds(watcher["healthcheck"]["timeout"]) < seconds(watcher["healthcheck"]["interval"])


def test_health_check_waits_for_the_first_planning_pass() -> None:
    # `watcher health` fails until the daemon has planned once, moments after start;
    # a start period keeps that from counting against the container.
    assert seconds(image().healthcheck_options["start-period"]) > 0


def test_stop_grace_period_outlasts_the_daemons_shutdown_bound() -> None:
    grace = seconds(compose()["services"]["watcher"]["stop_grace_period"])

    assert SHUTDOWN_GRACE_SECONDS < grace <= SHUTDOWN_GRACE_SECONDS + 30


def test_every_variable_set_for_the_watcher_is_one_the_code_reads() -> None:
    names = set(service_env(compose()["services"]["watcher"])) | set(image().env)

    assert {"WATCHER_DATABASE_URL", "WATCHER_CONFIG"} <= names
    unread = sorted(name for name in names - RUNTIME_VARIABLES if not code_reads(name))
    assert not unread, f"set for the container but read nowhere in watcher/: {unread}"


def test_image_is_python_311_slim_and_runs_as_an_unprivileged_user() -> None:
    built = image()

    assert built.base == "python:3.11-slim"
    assert built.user is not None
    assert built.user.split(":")[0] not in ("root", "0")


def test_image_runs_the_daemon_as_pid_1_on_the_mounted_config() -> None:
    built = image()

    # Exec form: a shell form would make /bin/sh PID 1, and sh does not pass SIGTERM on.
    assert built.entrypoint == ["watcher"]
    assert built.cmd == ["run", "-c", CONTAINER_CONFIG]


def test_build_context_holds_everything_the_wheel_is_built_from() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = [
        "pyproject.toml",
        pyproject["project"]["readme"],
        *wheel["packages"],
        *wheel.get("force-include", {}),
    ]
    copied = image().copied

    for path in needed:
        assert any(path == src or path.startswith(src.rstrip("/") + "/") for src in copied), (
            f"the Dockerfile does not COPY {path}"
        )
    for src in copied:
        top = ROOT / src
        files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        assert files, f"COPY {src}: nothing there"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative:
                assert in_build_context(relative), f".dockerignore leaves out {relative}"


@pytest.mark.parametrize(
    "path",
    [
        "watcher.yaml",
        ".env",
        "watcher.db",
        "config/example.yaml",
        ".venv/bin/python",
        ".git/config",
        "tests/test_compose.py",
        "watcher/__pycache__/cli.cpython-311.pyc",
    ],
)
def test_build_context_leaves_out_secrets_and_local_state(path: str) -> None:
    assert not in_build_context(path)


# --- the commands, run for real ------------------------------------------------------


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(
                    not POSTGRES_URL,
                    reason="set WATCHER_TEST_POSTGRES_URL to run against PostgreSQL",
                ),
            ],
        ),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind the compose file could point the daemon at."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'watcher.db'}"
        return
    assert POSTGRES_URL is not None
    # A schema of our own rather than dropping `public`: other suites may be using the
    # same test database at the same time.
    schema = f"compose_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A minimal config: one SIM expiring in 3 days, reminders on the console."""
    expires = datetime.now(ZoneInfo("Asia/Almaty")).date() + timedelta(days=3)
    path = tmp_path / "config" / "watcher.yaml"
    path.parent.mkdir()
    path.write_text(
        f"""\
timezone: Asia/Almaty
# Midnight: today's 3-day reminder is due whatever the hour the test runs at.
remind_at: "00:00"
channels:
  console: "console://"
users:
  - name: alice
    notify: [console]
    sims:
      - id: alice-kcell
        operator: kcell
        number: "+77011234567"
        expires: {expires.isoformat()}
""",
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True)
class Container:
    """The watcher service's command and environment, mapped to run on this machine."""

    argv: list[str]
    healthcheck: list[str]
    env: dict[str, str]
    cwd: Path

    def command(self, *subcommand: str) -> list[str]:
        """The service command with ``run`` replaced: ``("check",)``, ``("run", "--once")``."""
        at = self.argv.index("run")
        rest = self.argv[at + 1 :]
        if subcommand[:1] != ("run",) and "--http" in rest:  # the daemon's own option
            http = rest.index("--http")
            rest = rest[:http] + rest[http + 2 :]
        return [*self.argv[:at], *subcommand, *rest]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def start(self, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT
            )


@pytest.fixture
def container(tmp_path: Path, config_file: Path, database_url: str) -> Container:
    built = image()
    service = compose()["services"]["watcher"]
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    # Where each path the container uses is on this machine.
    paths = {
        CONTAINER_CONFIG: str(config_file),
        "/opt/venv/bin": str(Path(sys.executable).parent),
        "/data": str(data),
    }

    def here(value: str) -> str:
        for inside, outside in paths.items():
            value = re.sub(rf"(?<![\w/]){re.escape(inside)}(?=$|[/:])", outside, value)
        return value

    container_env = {**built.env, **service_env(service)}
    assert "WATCHER_DATABASE_URL" in container_env
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHER_")}
    for key, value in container_env.items():
        env[key] = here(value).replace("${PATH}", "$PATH").replace("$PATH", os.environ["PATH"])
    env["WATCHER_DATABASE_URL"] = database_url
    argv = [here(word) for word in service.get("entrypoint", built.entrypoint)]
    argv += [here(word) for word in service.get("command", built.cmd)]
    check = [here(word) for word in healthcheck_argv(service)]
    # The port the service listens on, mapped to a free one here as paths are.
    if "--http" in argv:
        port = str(free_port())
        for command in (argv, check):
            if "--http" in command:
                at = command.index("--http") + 1
                command[at] = f"{command[at].rpartition(':')[0]}:{port}"
    for command in (argv, check):
        executable = shutil.which(command[0], path=env["PATH"])
        assert executable, f"{command[0]} is not on the container's PATH here: {env['PATH']}"
        command[0] = executable
    workdir = Path(here(built.workdir)) if built.workdir else tmp_path
    return Container(argv, check, env, workdir)


def _assert_exit(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, (
        f"{shlex.join(result.args)} exited {result.returncode}, expected {code}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


def test_config_check_and_migrations_succeed_and_health_fails_before_planning(
    container: Container,
) -> None:
    _assert_exit(container.run(container.command("check")), 0)
    _assert_exit(container.run(container.command("db", "upgrade")), 0)
    _assert_exit(container.run(container.command("db", "upgrade")), 0)  # idempotent

    unplanned = container.run(container.healthcheck)

    _assert_exit(unplanned, 1)
    assert unplanned.stdout.startswith("unhealthy")


def test_one_pass_delivers_the_reminder_once_and_leaves_the_service_healthy(
    container: Container,
) -> None:
    first = container.run(container.command("run", "--once"))
    _assert_exit(first, 0)
    assert "alice-kcell" in first.stdout  # console:// prints the reminder

    # No daemon serves HTTP after a one-off pass: the image's own check reads the database.
    health = container.run(container.command("health"))
    _assert_exit(health, 0)
    assert health.stdout.startswith("healthy")

    # What a container restart does: nothing is sent twice.
    again = container.run(container.command("run", "--once"))
    _assert_exit(again, 0)
    assert "alice-kcell" not in again.stdout


@pytest.mark.e2e
def test_daemon_turns_healthy_and_stops_on_sigterm_within_the_grace_period(
    container: Container, tmp_path: Path
) -> None:
    grace = seconds(compose()["services"]["watcher"]["stop_grace_period"])
    log = tmp_path / "daemon.log"
    daemon = container.start(log)
    try:
        deadline = time.monotonic() + 60
        # Each health check is a process start and a database round trip, so this
        # loop paces itself.
        while (health := container.run(container.healthcheck)).returncode != 0:
            if daemon.poll() is not None:
                pytest.fail(f"the daemon exited {daemon.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not healthy after 60 s: {health.stdout}\n{log.read_text()[-3000:]}")

        daemon.send_signal(signal.SIGTERM)  # what `docker compose stop` sends
        try:
            code = daemon.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {grace:.0f} s after SIGTERM; Docker would SIGKILL it")
        assert code == 0, log.read_text()[-3000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
