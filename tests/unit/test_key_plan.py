"""A key's plan in the domain, and what of its metadata the authorizer passes on (no AWS)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from keysentry import model
from keysentry.authorizer.respond import Contexts
from keysentry.errors import ValidationError
from keysentry.model import CONTEXT_METADATA_PREFIX, KeySpec, Signing
from keysentry.plans import Plans

from tests.conftest import T0

PLANS = Plans.from_json('{"basic": {"rate": 1, "burst": 1}, "team": {"rate": 9, "burst": 9}}', "basic")


def issue(spec: KeySpec) -> model.KeyRecord:
    return model.issue(
        spec,
        kid="AAAAAAAAAAAA",
        digest="d",
        pepper_version="1",
        now=T0,
        actor="ops",
        signing=Signing(),
        plans=PLANS,
    )


def test_a_key_is_issued_on_its_plan_or_on_the_default_by_name() -> None:
    assert issue(KeySpec("acme", plan="team")).plan == "team"
    assert issue(KeySpec("acme")).plan == "basic"
    with pytest.raises(ValidationError, match=r"^unknown plan; the plans are: basic, team$"):
        issue(KeySpec("acme", plan="free"))


def test_an_update_moves_a_key_to_a_known_plan_only() -> None:
    record = issue(KeySpec("acme"))
    moved = model.update(record, now=T0, actor="ops", plans=PLANS, plan="team")
    assert moved.plan == "team" and moved.version == record.version + 1
    for wrong in ("free", ["team"], None):
        with pytest.raises(ValidationError, match="unknown plan"):
            model.update(record, now=T0, actor="ops", plans=PLANS, plan=wrong)


def test_a_successor_keeps_the_plan() -> None:
    record = issue(KeySpec("acme", plan="team"))
    _, successor = model.rotate(
        record,
        now=T0,
        actor="ops",
        grace_days=1,
        successor_kid="BBBBBBBBBBBB",
        successor_digest="e",
        pepper_version="1",
    )
    assert successor.plan == "team"


def test_the_context_carries_at_most_ten_well_named_ctx_entries_of_an_old_record() -> None:
    record = issue(KeySpec("acme"))
    # a record written before the bound: more entries, and names a mapping template cannot read
    metadata = {f"ctx_{n:02}": "v" * 300 for n in range(12)} | {"ctx_a.b": "x", "ctx_": "y", "team": "z"}
    context = Contexts(10).context(replace(record, metadata=metadata), T0)
    passed = {k: v for k, v in context.items() if k.startswith(CONTEXT_METADATA_PREFIX)}
    assert sorted(passed) == [f"ctx_{n:02}" for n in range(10)]
    assert all(v == "v" * 256 for v in passed.values())


def test_no_context_key_of_keysentrys_own_can_be_named_by_an_owner() -> None:
    record = issue(KeySpec("acme", metadata={"ctx_key_id": "forged", "ctx_plan": "gold"}))
    context = Contexts(10).context(record, T0)
    own = {k for k in context if not k.startswith(CONTEXT_METADATA_PREFIX)}
    assert own == {
        "key_id", "owner_id", "scopes", "status", "env", "successor", "signing", "plan", "meter",
        "rotate_in_seconds",
    }  # fmt: skip
    assert context["key_id"] == "AAAAAAAAAAAA" and context["plan"] == "basic"
    assert context["ctx_key_id"] == "forged"
