"""The Serverless Application Repository's copy of template.yaml: no transform the repository refuses,
and each value the copy fixes is the one the template's defaults give."""

from __future__ import annotations

from pathlib import Path

import pytest
from keysentry_dev.publishable import RESOLVED, TRANSFORMS, publishable
from keysentry_dev.template import load_template as load

from tests.conftest import ROOT


def test_the_copy_has_only_the_sam_transform_and_no_condition_sam_would_misread(tmp_path: Path) -> None:
    copy = publishable((ROOT / "template.yaml").read_text())
    path = tmp_path / "template-sar.yaml"
    path.write_text(copy)
    template = load(path)
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    resources = template["Resources"]
    rest_auth = resources["SampleApi"]["Properties"]["Auth"]
    http_auth = resources["SampleHttpApi"]["Properties"]["Auth"]["Authorizers"]["KeysentryAuthorizer"]
    assert rest_auth["ApiKeyRequired"] is False
    assert http_auth["EnableSimpleResponses"] is True
    assert "AWS::LanguageExtensions" not in copy.split("Resources:", 1)[1]


def test_the_fixed_values_are_the_defaults_ones() -> None:
    parameters = load(ROOT / "template.yaml")["Parameters"]
    assert parameters["UsageIdentifier"]["Default"] == "false"  # so ApiKeyRequired is false
    assert parameters["AuthorizerHttpResponse"]["Default"] == "simple"  # so simple responses
    assert TRANSFORMS in (ROOT / "template.yaml").read_text()


def test_a_template_that_changed_under_the_copy_is_refused() -> None:
    text = (ROOT / "template.yaml").read_text()
    line = next(iter(k for k in RESOLVED if k != TRANSFORMS))
    with pytest.raises(ValueError, match="expected one line"):
        publishable(text.replace(line, line.replace("true, false", "false, true")))
