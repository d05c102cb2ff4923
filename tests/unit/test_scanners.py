"""The scanners' baseline (keysentry_dev.scanners): a new finding fails, an accepted one passes, an
entry that matches nothing or has no reason fails, and a refresh keeps every reason. No scanner runs
here: the findings are built, or parsed from the scanners' JSON as they print it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from keysentry_dev.scanners import (
    CFN_LINT,
    CHECKOV,
    Accepted,
    Finding,
    cfn_lint_findings,
    checkov_findings,
    compare,
    dump_baseline,
    every_resource,
    load_baseline,
    main,
    report,
    templates,
    updated,
)
from keysentry_dev.template import load_template

from tests.conftest import ROOT

VPC = Finding("template.yaml", CHECKOV, "CKV_AWS_117", "AuthorizerFunction", "in a VPC")
VPC_API = Finding("template.yaml", CHECKOV, "CKV_AWS_117", "ApiFunction", "in a VPC")
RETAIN = Finding("template.yaml", CFN_LINT, "I3011", "NonceTable", "DeletionPolicy")
ACCEPTED_VPC = Accepted(
    "template.yaml", CHECKOV, "CKV_AWS_117", ("ApiFunction", "AuthorizerFunction"), "AWS APIs only"
)


def test_a_finding_the_baseline_accepts_passes() -> None:
    assert compare([VPC, VPC_API], [ACCEPTED_VPC]).ok


def test_a_new_finding_fails_and_is_reported_with_its_description() -> None:
    comparison = compare([VPC, VPC_API, RETAIN], [ACCEPTED_VPC])

    assert not comparison.ok
    assert comparison.new == [RETAIN]
    assert "template.yaml: cfn-lint I3011 on NonceTable: DeletionPolicy" in report(comparison)


def test_the_same_check_on_another_resource_or_template_is_new() -> None:
    other_resource = Finding("template.yaml", CHECKOV, "CKV_AWS_117", "UsageFunction")
    other_template = Finding("examples/rest-api/template.yaml", CHECKOV, "CKV_AWS_117", "ApiFunction")
    other_scanner = Finding("template.yaml", CFN_LINT, "CKV_AWS_117", "ApiFunction")

    comparison = compare([VPC, VPC_API, other_resource, other_template, other_scanner], [ACCEPTED_VPC])

    assert comparison.new == sorted([other_resource, other_template, other_scanner])


def test_an_entry_that_matches_nothing_any_more_fails_as_stale() -> None:
    comparison = compare([VPC], [ACCEPTED_VPC])  # ApiFunction's finding was fixed

    assert not comparison.ok
    assert comparison.new == []
    assert comparison.stale == [(ACCEPTED_VPC, "ApiFunction")]
    assert "template.yaml: checkov CKV_AWS_117 on ApiFunction" in report(comparison)


def test_an_entry_without_a_reason_fails() -> None:
    unexplained = Accepted("template.yaml", CFN_LINT, "I3011", ("NonceTable",), "  ")

    comparison = compare([RETAIN], [unexplained])

    assert not comparison.ok
    assert comparison.unexplained == [unexplained]


def test_a_refresh_keeps_reasons_drops_stale_resources_and_adds_new_findings_without_a_reason() -> None:
    retain_usage = Finding("template.yaml", CFN_LINT, "I3011", "UsageTable")
    gone = Accepted("template.yaml", CHECKOV, "CKV_AWS_28", ("NonceTable",), "TTL data")

    entries = updated([VPC, RETAIN, retain_usage], [ACCEPTED_VPC, gone])

    assert entries == [
        Accepted("template.yaml", CFN_LINT, "I3011", ("NonceTable", "UsageTable"), ""),
        Accepted("template.yaml", CHECKOV, "CKV_AWS_117", ("AuthorizerFunction",), "AWS APIs only"),
    ]
    # the refreshed baseline still fails until someone writes the new entry's reason
    comparison = compare([VPC, RETAIN, retain_usage], entries)
    assert comparison.new == [] and comparison.stale == []
    assert [e.check for e in comparison.unexplained] == ["I3011"]


def test_a_new_resource_under_an_accepted_check_gets_its_own_entry_not_the_old_reason() -> None:
    entries = updated(
        [VPC, VPC_API, Finding("template.yaml", CHECKOV, "CKV_AWS_117", "UsageFunction")], [ACCEPTED_VPC]
    )

    assert ACCEPTED_VPC in entries
    assert Accepted("template.yaml", CHECKOV, "CKV_AWS_117", ("UsageFunction",), "") in entries


def test_the_baseline_file_round_trips() -> None:
    entries = [
        ACCEPTED_VPC,
        Accepted("examples/http-api/template.yaml", CFN_LINT, "I3011", ("Logs",), "why: it's so"),
    ]

    assert load_baseline(dump_baseline(entries)) == entries


def test_a_malformed_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="malformed"):
        load_baseline("template.yaml:\n- {scanner: bandit, check: B101, resources: [X], reason: r}\n")


def test_cfn_lint_json_names_the_resource_of_each_match() -> None:
    output = json.dumps(
        [
            {
                "Filename": "template.yaml",
                "Level": "Informational",
                "Location": {
                    "Path": ["Resources", "NonceTable"],
                    "Start": {"LineNumber": 346, "ColumnNumber": 3},
                },
                "Message": "'DeletionPolicy' is a required property",
                "Rule": {"Id": "I3011", "Source": "https://example.invalid/rule"},
            },
            {
                "Filename": "template.yaml",
                "Level": "Warning",
                "Location": {"Path": ["Parameters", "Stage"], "Start": {"LineNumber": 71, "ColumnNumber": 3}},
                "Message": "unused",
                "Rule": {"Id": "W2001"},
            },
        ]
    )

    findings = cfn_lint_findings(output)

    assert [f.key for f in findings] == [
        ("template.yaml", CFN_LINT, "I3011", "NonceTable"),
        ("template.yaml", CFN_LINT, "W2001", "Parameters/Stage"),
    ]
    assert "line 346" in findings[0].description


def test_checkov_json_is_mapped_back_to_the_template_it_scanned(tmp_path: Path) -> None:
    scanned = tmp_path / "0-template.yaml.json"
    failed = {"check_id": "CKV_AWS_27", "check_name": "SQS encrypted", "resource": "AWS::SQS::Queue.Dlq"}
    output = json.dumps(
        [
            {
                "check_type": "cloudformation",
                "results": {"failed_checks": [{**failed, "file_abs_path": str(scanned)}]},
            }
        ]
    )

    (finding,) = checkov_findings(output, {str(scanned.resolve()): "template.yaml"})

    assert finding.key == ("template.yaml", CHECKOV, "CKV_AWS_27", "Dlq")
    assert finding.description == "SQS encrypted"


def test_checkov_scans_every_resource_whatever_its_condition() -> None:
    template = load_template(ROOT / "template.yaml")
    conditional = [name for name, res in template["Resources"].items() if "Condition" in res]
    assert conditional  # the WAF, usage plans, ...: off under the defaults checkov would evaluate

    scanned = every_resource(template)

    assert set(scanned["Resources"]) == set(template["Resources"])
    assert not [name for name, res in scanned["Resources"].items() if "Condition" in res]


def test_the_templates_scanned_are_keysentrys_and_every_examples() -> None:
    names = templates(ROOT)

    assert names[0] == "template.yaml"
    assert set(names[1:]) == {str(p.relative_to(ROOT)) for p in ROOT.glob("examples/*/template.yaml")}
    assert len(names) >= 3


def test_the_committed_baseline_is_well_formed_and_every_entry_has_a_reason() -> None:
    entries = load_baseline((ROOT / ".scanners-baseline.yaml").read_text())

    assert entries
    assert all(e.reason.strip() and e.resources for e in entries)
    assert {e.template for e in entries} <= set(templates(ROOT))


def test_main_fails_on_a_new_finding_and_passes_once_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("keysentry_dev.scanners.run_checkov", lambda *_: [VPC])
    monkeypatch.setattr("keysentry_dev.scanners.run_cfn_lint", lambda *_: [RETAIN])
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(dump_baseline([ACCEPTED_VPC]))

    assert main(["--baseline", str(baseline)]) == 1  # RETAIN is new, ApiFunction stale
    assert "I3011 on NonceTable" in capsys.readouterr().err

    assert main(["--baseline", str(baseline), "--update"]) == 0
    assert main(["--baseline", str(baseline)]) == 1  # the new entry has no reason yet

    baseline.write_text(baseline.read_text().replace("reason: ''", "reason: TTL data, short-lived"))
    assert main(["--baseline", str(baseline)]) == 0
