"""Every shell block of the README is marked ``<!-- test: NAME -->`` and is run or checked by a test:
tests/integration/test_readme.py runs the local and first-key steps in bash as written; this file
checks the ones that set up a machine or an AWS account, which a test cannot run (they install
packages, or deploy): what they name exists, so a renamed target, extra or setting breaks here."""

from __future__ import annotations

import re
import shlex
import tomllib

from packaging.requirements import Requirement

from tests.conftest import ROOT
from tests.integration.test_readme import readme_block

RUN_AS_WRITTEN = {"local-up", "local-gateway", "aws-first-key"}  # by tests/integration/test_readme.py
CHECKED_HERE = {"two-commands", "install", "deploy"}


def commands(block: str) -> list[list[str]]:
    return [words for line in block.splitlines() if (words := shlex.split(line, comments=True))]


def test_every_shell_block_of_the_readme_is_marked_for_a_test() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"(?:<!-- test: ([\w-]+) -->\n)?```(?:bash|sh|shell|console)\n", text)
    assert blocks, "the README has no shell blocks"
    assert "" not in blocks, "a shell block of the README is not marked <!-- test: NAME -->"
    assert sorted(blocks) == sorted(RUN_AS_WRITTEN | CHECKED_HERE)


def test_the_two_commands_are_make_targets_and_ci_runs_the_tests_with_one_of_them() -> None:
    assert commands(readme_block("two-commands")) == [["make", "demo"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text()
    # demo's narration is tests/unit/test_demo.py's; test is what CI runs
    assert re.search(r"^demo:.*\n\t\$\(BIN\)/keysentry demo$", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_each_install_line_installs_the_cli_with_an_extra_the_project_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert project["scripts"]["keysentry"]
    installs = commands(readme_block("install"))
    assert len(installs) == 2
    for words in installs:
        assert words[:2] == ["pip", "install"], words
        target = words[-1]
        # from a clone, `.` is this project: read as the requirement it stands for
        requirement = Requirement(re.sub(r"^\.(?=\[)", project["name"], target))
        assert requirement.name == project["name"], target
        assert requirement.extras <= set(extras), target
        # the CLI needs the server extra, itself or through another one
        pulled = set(requirement.extras) | {
            extra for name in requirement.extras for extra in extras if f"keysentry[{extra}]" in extras[name]
        }
        assert "server" in pulled, target
    # the index form, for when the package is published, names an extra that exists too
    for named in re.findall(r"pip install 'keysentry\[(\w+)\]'", (ROOT / "README.md").read_text()):
        assert named in extras


def test_the_guided_deploy_finds_the_capabilities_the_template_needs_in_samconfig() -> None:
    assert commands(readme_block("deploy")) == [["sam", "build", "&&", "sam", "deploy", "--guided"]]
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploy = samconfig["default"]["deploy"]["parameters"]
    # roles for the functions (CAPABILITY_IAM); the LanguageExtensions and SAM transforms (AUTO_EXPAND)
    assert set(deploy["capabilities"].split()) >= {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert 'Stage="dev"' in deploy["parameter_overrides"]
