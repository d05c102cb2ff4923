"""The command line's grammar and its documents: every option explained, the help readable as text,
the settings it reads from a stack the ones template.yaml puts there, the exit codes docs/cli.md's."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from keysentry import keyformat
from keysentry.cli import build_parser, main
from keysentry.cli.failures import EXIT_CODES
from keysentry.cli.parser import parsers
from keysentry.cli.stack import FROM_OUTPUT, FROM_PARAMETER, RESOURCES
from keysentry.settings import PlansSyncSettings, Settings

from tests.conftest import ROOT, template


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        for parser in parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction) and not action.help
    ]
    assert missing == []


def test_the_walk_sees_every_command() -> None:
    progs = {parser.prog for parser in parsers(build_parser())}
    assert {"keysentry keys create", "keysentry local up", "keysentry plans sync"} <= progs


def test_the_help_is_plain_text() -> None:
    for parser in parsers(build_parser()):
        assert "`" not in parser.format_help(), parser.prog


def test_no_arguments_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: keysentry") and "keys" in out and "--stack NAME" in out
    assert "required" not in out + err


def test_a_group_without_its_command_prints_the_groups_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: keysentry keys") and "create" in err


def test_a_mistake_on_the_line_is_json_when_the_line_asks_for_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["keys", "create", "--json"])
    assert raised.value.code == 2
    doc = json.loads(capsys.readouterr().err)
    assert doc["code"] == 2 and "--owner" in doc["error"]


def test_a_malformed_key_pasted_for_an_id_is_refused_without_being_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = keyformat.generate("live").token
    broken = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(SystemExit) as raised:
        main(["keys", "show", broken])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "checksum" in err and broken not in err and token[:20] not in err


@pytest.mark.parametrize("as_json", [False, True])
def test_a_key_pasted_where_none_belongs_is_not_quoted_back(
    capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    token = keyformat.generate("live").token
    for argv in (["keys", "list", token], [token], ["keys", token]):
        with pytest.raises(SystemExit) as raised:
            main([*argv, *(["--json"] if as_json else [])])
        assert raised.value.code == 2
        err = capsys.readouterr().err
        assert "not shown" in err and token[8:] not in err


def test_a_pasted_key_is_read_for_its_id() -> None:
    parsed = keyformat.generate("test")
    args = build_parser().parse_args(["keys", "revoke", parsed.token + "\n", "--reason", "leaked"])
    assert args.kid == parsed.kid


def test_the_actor_may_come_before_the_command() -> None:
    assert build_parser().parse_args(["--actor", "ops", "keys", "list"]).actor == "ops"


def test_the_settings_a_stack_gives_are_the_ones_template_yaml_sets_from_it() -> None:
    # Each output the CLI reads is the very resource the functions' variable names
    doc = template()
    functions = [doc["Globals"]["Function"]["Environment"]["Variables"]] + [
        r["Properties"].get("Environment", {}).get("Variables", {})
        for r in doc["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    ]

    def set_to(variable: str) -> object:
        (value,) = {json.dumps(env[variable]) for env in functions if variable in env}
        return json.loads(value)

    for variable, output in FROM_OUTPUT.items():
        assert doc["Outputs"][output]["Value"] == set_to(variable), variable
    for variable, parameter in FROM_PARAMETER.items():
        assert parameter in doc["Parameters"] and set_to(variable) == {"Ref": parameter}, variable
    # and everything the key service and plans sync read from a resource comes from the stack
    # (but the stages the plans function meters: plans sync names usage plans by Stage alone)
    read = Settings.variables() | PlansSyncSettings.variables() - {"USAGE_PLAN_STAGES"}
    assert read <= set(FROM_OUTPUT) | set(FROM_PARAMETER)
    assert set(RESOURCES) <= set(FROM_OUTPUT)


def test_the_cli_document_gives_the_exit_codes_the_code_has() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    listed = dict(re.findall(r"^\| (\d) \| (.+?) \|$", text, re.M))
    assert {int(code): meaning for code, meaning in listed.items()} == EXIT_CODES


def test_the_console_script_prints_help_without_arguments() -> None:
    keysentry = Path(sys.executable).parent / "keysentry"
    done = subprocess.run([keysentry], capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    assert done.returncode == 0 and done.stdout.startswith("usage: keysentry")
