"""The command line as a terminal user meets it: where flags may go, help for every
argument, tab completion, --json everywhere, and a closed pipe that ends quietly."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import WriteConfig
from watcher.cli import _parser, main
from watcher.completion import config_from_words
from watcher.pipes import _Stdout

ROOT = Path(__file__).resolve().parents[1]
TODAY = date.today()  # the CLI uses the real clock
ENTRY = "from watcher.cli import entry; entry()"  # as the console script


@pytest.fixture
def config(write_config: WriteConfig, tmp_path: Path) -> Path:
    return write_config(
        f"""
        timezone: UTC
        database: sqlite:///{tmp_path / "watcher.db"}
        channels:
          dead: "json://127.0.0.1:1/nothing-listens"
        users:
          - name: alice
            notify: [dead]
            sims:
              - id: alice-kcell
                operator: kcell
                number: "+77011234567"
                expires: {TODAY + timedelta(days=10)}
                low_balance: 1500
              - id: alice-tele2
                operator: tele2
                number: "+77071234567"
                expires: {TODAY + timedelta(days=20)}
        """
    )


def watcher(
    *argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``watcher ARGV`` in a fresh process, as the console script runs it."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full_env.pop("WATCHER_CONFIG", None)
    full_env.pop("WATCHER_LOG_LEVEL", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *argv],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


# --- flags before or after the command -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "config", "level"),
    [
        (["-c", "a.yaml", "-v", "status"], "a.yaml", "DEBUG"),
        (["status", "-c", "a.yaml", "-v"], "a.yaml", "DEBUG"),
        (["-v", "status", "-c", "a.yaml"], "a.yaml", "DEBUG"),
        (["-c", "a.yaml", "status", "-q"], "a.yaml", "WARNING"),
        (["--config", "a.yaml", "renew", "x", "--quiet"], "a.yaml", "WARNING"),
        (["-c", "a.yaml", "status", "-c", "b.yaml"], "b.yaml", None),
        (["-q", "status", "-v"], None, "DEBUG"),
        (["status"], None, None),
    ],
)
def test_config_and_log_flags_work_before_or_after_the_command(
    argv: list[str], config: str | None, level: str | None
) -> None:
    args = _parser().parse_args(argv)
    assert getattr(args, "config", None) == (Path(config) if config else None)
    assert getattr(args, "log_level", None) == level


COMMAND_LINES = [
    ["status"],
    ["check", "--json"],
    ["renew", "sim-1", "--for", "30d"],
    ["balance", "sim-1", "1500"],
    ["notify-test"],
    ["scrape", "src-1", "--dry-run"],
    ["health", "--max-age", "60"],
    ["db", "upgrade"],
]


@given(
    command=st.sampled_from(COMMAND_LINES),
    config=st.sampled_from(["a.yaml", "dir/b.yaml", "--weird.yaml"]),
    config_form=st.sampled_from(["-c", "--config", "--config="]),
    config_after=st.booleans(),
    level=st.sampled_from([None, "-v", "--verbose", "-q", "--quiet"]),
    level_after=st.booleans(),
)
def test_any_placement_of_the_shared_flags_parses_the_same(
    command: list[str],
    config: str,
    config_form: str,
    config_after: bool,
    level: str | None,
    level_after: bool,
) -> None:
    config_flag = [f"--config={config}"] if config_form == "--config=" else [config_form, config]
    if config.startswith("-") and config_form != "--config=":
        config_flag = [f"--config={config}"]  # a value like an option needs the = form
    before: list[str] = []
    after: list[str] = []
    (after if config_after else before).extend(config_flag)
    if level is not None:
        (after if level_after else before).append(level)
    args = _parser().parse_args([*before, *command, *after])
    assert args.config == Path(config)
    expected = {None: None, "-v": "DEBUG", "--verbose": "DEBUG"}.get(level, "WARNING")
    assert getattr(args, "log_level", None) == expected
    assert args.command == command[0]


def test_verbose_after_the_command_logs_debug_and_quiet_before_it_logs_no_info(
    config: Path,
) -> None:
    verbose = watcher("db", "upgrade", "-c", str(config), "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert "DEBUG" in verbose.stderr
    quiet = watcher("-q", "-c", str(config), "renew", "alice-kcell", "--until", "2031-01-31")
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO" not in quiet.stderr  # without -q: "INFO watcher.sync: config synced"
    assert "renewed until" in quiet.stdout


def test_watcher_log_level_is_read_and_a_bad_one_is_a_one_line_error(config: Path) -> None:
    debug = watcher("db", "upgrade", "-c", str(config), env={"WATCHER_LOG_LEVEL": "debug"})
    assert "DEBUG" in debug.stderr
    bad = watcher("check", "-c", str(config), env={"WATCHER_LOG_LEVEL": "LOUD"})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: WATCHER_LOG_LEVEL='LOUD' is not a log level; use one of DEBUG, INFO, WARNING, ERROR"
    ]


def test_help_names_watcher_log_level_and_fits_80_columns() -> None:
    result = watcher("--help", env={"COLUMNS": "80"})
    assert "WATCHER_LOG_LEVEL" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


# --- help for every argument -----------------------------------------------------


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_positional_and_option_of_every_command_has_help() -> None:
    missing = [
        f"{prog}: {'/'.join(action.option_strings) or action.dest}"
        for prog, parser in _parsers(_parser())
        for action in parser._actions
        if not (action.help and action.help.strip()) or action.help == argparse.SUPPRESS
    ]
    assert not missing, missing


def test_every_command_but_the_hidden_one_is_listed_with_help() -> None:
    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    listed = {choice.dest: choice.help for choice in subparsers._choices_actions}
    assert set(listed) == set(subparsers.choices) - {"_complete"}
    assert all(listed.values())


# --- --operator ------------------------------------------------------------------


def test_an_unknown_operator_is_an_error_listing_the_known_ones(config: Path, capsys) -> None:
    assert main(["promotions", "--operator", "nosuch", "-c", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "error: no operator 'nosuch' (known: activ, altel, beeline, kcell, tele2)"
    )


def test_a_known_operator_in_any_case_is_accepted(config: Path, capsys) -> None:
    assert main(["promotions", "--operator", "KCell", "--json", "-c", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == []


# --- tab completion --------------------------------------------------------------

COMMANDS = ["run", "check", "status", "renew", "balance", "notify-test", "scrape", "health"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_name_every_command_and_pass_the_shells_syntax_check(
    shell: str, capsys, tmp_path: Path
) -> None:
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert command in text
    # The hidden command is run by the id helper, and never offered as a command.
    offered = [
        line
        for line in text.splitlines()
        if re.search(r"\b_complete\b", line)
        and not any(helper in line for helper in ("KIND", '"$1"', "$argv[1]"))
    ]
    assert not offered
    script = tmp_path / f"watcher.{shell}"
    script.write_text(text, encoding="utf-8")
    check = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "fish": ["fish", "--no-execute"]}
    if shutil.which(check[shell][0]) is None:
        pytest.skip(f"{shell} is not installed here")
    result = subprocess.run([*check[shell], str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sims", ["alice-kcell", "alice-tele2"]),
        ("channels", ["dead"]),
        ("sources", ["kcell-promo", "activ-promo", "beeline-promo"]),
        ("operators", ["activ", "altel", "beeline", "kcell", "tele2"]),
    ],
)
def test_the_hidden_complete_command_prints_the_configs_ids(
    config: Path, capsys, kind: str, expected: list[str]
) -> None:
    # As the scripts call it: the command line being completed, -c FILE inside it.
    words = ["watcher", "renew", "-c", str(config), "al"]
    assert main(["_complete", kind, "--", *words]) == 0
    assert capsys.readouterr().out.split() == expected
    assert main(["_complete", kind, "-c", str(config)]) == 0
    assert capsys.readouterr().out.split() == expected


@pytest.mark.parametrize(
    ("words", "config"),
    [
        (["watcher", "renew", "-c", "a.yaml", "x"], "a.yaml"),
        (["watcher", "-ca.yaml", "renew"], "a.yaml"),
        (["watcher", "--config", "a.yaml", "renew"], "a.yaml"),
        (["watcher", "--config=a.yaml", "renew"], "a.yaml"),
        (["watcher", "--config", "=", "a.yaml", "renew"], "a.yaml"),  # bash splits at =
        (["watcher", "-c", "a.yaml", "status", "-c", "b.yaml"], "b.yaml"),  # the last wins
        (["watcher", "renew", "x"], None),
        (["watcher", "renew", "-c"], None),  # still being typed
    ],
)
def test_the_config_is_read_from_the_command_line_being_completed(
    words: list[str], config: str | None
) -> None:
    assert config_from_words(words) == (Path(config) if config else None)


def test_completing_against_a_missing_config_prints_nothing(tmp_path: Path, capsys) -> None:
    assert main(["_complete", "sims", "--", "watcher", "-c", str(tmp_path / "no.yaml")]) == 0
    assert capsys.readouterr() == ("", "")


def test_bash_completes_sim_ids_from_the_config_on_the_command_line(
    config: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "watcher"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{ENTRY}" "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    script = watcher("completion", "bash").stdout
    line = f"watcher balance -c {config} alice-k"
    driver = f"""
{script}
COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}
_shtab_watcher watcher alice-k "{config}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", driver], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.split() == ["alice-kcell"], result.stderr


# --- --json ----------------------------------------------------------------------


def test_every_reporting_command_has_json() -> None:
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    reporting = [
        "check", "status", "renew", "balance", "notify-test", "db", "health",
        "scrape", "sources", "promotions",
    ]  # fmt: skip
    for name in reporting:
        options = {o for a in subparsers.choices[name]._actions for o in a.option_strings}
        assert "--json" in options, name


def test_the_readme_documents_the_json_of_every_command_that_has_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### JSON output", 1)[1].split("\n## ", 1)[0]
    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        if any("--json" in a.option_strings for a in sub._actions):
            assert f"| `{name}" in section, name


def test_check_json_lists_what_the_config_sets_up_with_secrets_masked(config: Path, capsys) -> None:
    assert main(["check", "--json", "-c", str(config)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["errors"] == []
    [url] = report["channels"]["dead"]
    assert url.startswith("json://127.0.0.1:1/")
    assert "nothing-listens" not in url  # the path may hold a token: masked
    [alice] = report["users"]
    assert alice["name"] == "alice"
    assert alice["sims"][0] == {
        "id": "alice-kcell",
        "operator": "kcell",
        "number": "+7 701 *** ** 67",
    }
    assert alice["promotions"] is None


def test_check_json_on_a_bad_config_lists_every_error_and_exits_2(
    write_config: WriteConfig, capsys
) -> None:
    path = write_config("users:\n  - name: bob\n    sims: 3\n")
    assert main(["check", "--json", "-c", str(path)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["errors"]
    assert all(set(e) == {"file", "path", "problem"} for e in report["errors"])
    assert any(e["path"].startswith("users[0]") for e in report["errors"])


def test_renew_balance_status_db_and_health_print_json(config: Path, capsys) -> None:
    c = ["-c", str(config)]
    assert main(["db", "upgrade", "--json", *c]) == 0
    assert json.loads(capsys.readouterr().out)["up_to_date"] is True

    assert main(["renew", "alice-kcell", "--until", "2031-01-31", "--json", *c]) == 0
    renewal = json.loads(capsys.readouterr().out)
    assert renewal == {
        "sim": "alice-kcell",
        "expires": "2031-01-31",
        "previous_expiry": (TODAY + timedelta(days=10)).isoformat(),
        "today": TODAY.isoformat(),
        "days_left": (date(2031, 1, 31) - TODAY).days,
    }

    assert main(["balance", "alice-kcell", "900", "--json", *c]) == 0
    balance = json.loads(capsys.readouterr().out)
    assert balance == {
        "sim": "alice-kcell",
        "amount": "900.00",
        "date": TODAY.isoformat(),
        "low": True,
        "threshold": "1500.00",
    }

    assert main(["status", "--json", *c]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["sim"] for row in rows] == ["alice-kcell", "alice-tele2"]

    assert main(["health", "--json", *c]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "healthy": False,
        "last_planning": None,
        "age_seconds": None,
        "max_age_seconds": 180,
    }


def test_notify_test_json_reports_each_channel_and_keeps_console_output_off_stdout(
    write_config: WriteConfig, tmp_path: Path, capsys
) -> None:
    path = write_config(
        """
        channels:
          screen: "console://"
          dead: "json://127.0.0.1:1/nothing-listens"
        users:
          - name: alice
            notify: [screen, dead]
        """
    )
    assert main(["notify-test", "--json", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [(r["target"], r["ok"]) for r in rows] == [("screen", True), ("dead", False)]
    assert rows[1]["url"].startswith("json://127.0.0.1:1/")
    assert rows[1]["error"]
    assert "==" in captured.err  # the console channel's message, on stderr


# --- a closed pipe ---------------------------------------------------------------


def test_a_closed_pipe_swallows_the_rest_of_the_output() -> None:
    read, write = os.pipe()
    os.close(read)
    stream = os.fdopen(write, "w", encoding="utf-8")
    out = _Stdout(stream)
    out.write("x" * 200_000)
    out.flush()
    assert out.broken
    out.write("more\n")
    out.flush()
    stream.close()  # its last flush goes to /dev/null, not to a broken pipe


@pytest.fixture
def many_sims(write_config: WriteConfig, tmp_path: Path) -> Path:
    sims = "".join(
        f"""
              - id: sim-{i:04d}
                operator: kcell
                number: "+7701{i:07d}"
                expires: {TODAY + timedelta(days=i % 300 + 1)}"""
        for i in range(600)
    )
    return write_config(
        f"""
        timezone: UTC
        database: sqlite:///{tmp_path / "watcher.db"}
        channels:
          screen: "console://"
        users:
          - name: alice
            notify: [screen]
            sims:{sims}
        """
    )


@pytest.mark.parametrize(
    "argv", [["status", "--json"], ["check"], ["check", "--json"]], ids=" ".join
)
def test_a_reader_that_stops_early_gets_no_traceback_and_the_usual_status(
    many_sims: Path, argv: list[str]
) -> None:
    assert main(["db", "upgrade", "-c", str(many_sims)]) == 0  # not part of what is timed
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Far more than a pipe holds (64 KiB), so the command is still writing when the
    # reader goes: the `watcher ... | head -1` case.
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *argv, "-c", str(many_sims)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert first.strip()
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert "Exception ignored" not in stderr


@pytest.mark.parametrize(
    "argv", [["--help"], ["completion", "bash"], ["status", "--help"]], ids=" ".join
)
def test_help_and_scripts_into_a_pipe_closed_at_once_end_quietly(argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first byte
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert stderr == ""
