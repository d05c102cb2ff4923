"""template.yaml's Metadata: what the Serverless Application Repository publishes (within its
documented limits, at pyproject's version and license), and a console deploy form in which every
parameter sits in exactly one group, with a label."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from keysentry_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def test_every_parameter_is_in_exactly_one_group_of_the_deploy_form(template: dict[str, Any]) -> None:
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    placed = Counter(name for group in groups for name in group["Parameters"])
    assert set(placed) == set(template["Parameters"]), "every parameter grouped, no unknown one"
    assert [name for name, times in placed.items() if times > 1] == []
    assert all(group["Label"]["default"].strip() for group in groups)


def test_every_parameter_has_a_label(template: dict[str, Any]) -> None:
    labels = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterLabels"]
    assert set(labels) == set(template["Parameters"])
    assert [name for name, label in labels.items() if not label["default"].strip()] == []


def test_the_published_application_is_at_the_packages_version_and_license(
    template: dict[str, Any], project: dict[str, Any]
) -> None:
    app = template["Metadata"]["AWS::ServerlessRepo::Application"]
    assert app["SemanticVersion"] == project["version"]
    assert app["SpdxLicenseId"] == project["license"]
    assert (ROOT / app["LicenseUrl"]).is_file() and (
        ROOT / app["ReadmeUrl"]
    ).is_file()  # sam package uploads them


def test_the_published_metadata_is_within_the_repositorys_limits(template: dict[str, Any]) -> None:
    app = template["Metadata"]["AWS::ServerlessRepo::Application"]
    # no intrinsic functions: the repository reads the values as they are written
    assert all(isinstance(v, str) or all(isinstance(i, str) for i in v) for v in app.values())
    assert re.fullmatch(r"[a-zA-Z0-9\-]{1,140}", app["Name"])
    assert re.fullmatch(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?", app["Author"]) and len(app["Author"]) <= 127
    assert 1 <= len(app["Description"]) <= 256
    assert 1 <= len(app["Labels"]) <= 10
    assert all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label) for label in app["Labels"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", app["SemanticVersion"])
    assert app["SourceCodeUrl"].startswith("https://")
