"""Shared fixtures: dummy credentials, moto, template.yaml's resources, a controllable clock."""

from __future__ import annotations

import copy
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.iam.conformance import Checker, Finding, Report
from tests.iam.recorder import Call, Recorder, moto_resolver
from tests.iam.roles import variables

# What the template sets for every function, before any handler module is imported.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "keysentry")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "keysentry")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
T0 = 1_790_000_000  # a fixed "now" for tests: 2026-09-21T14:13:20Z


@cache
def template() -> dict[str, Any]:
    from keysentry_dev.template import load_template

    return load_template(ROOT / "template.yaml")


# ---------------------------------------------------------------- IAM conformance
#
# Every AWS call made beneath a functions/<name>/handler.py, in any test, is recorded and checked
# against that function's role in template.yaml (tests/iam): a call its role does not grant fails
# the test that made it. The grants no test used are listed at the end of the run.

IAM_CALLS = Recorder(ROOT / "functions", resolver=moto_resolver)
IAM_REPORT = Report()


@cache
def iam_checker() -> Checker:
    return Checker(template())


def pytest_configure(config: pytest.Config) -> None:
    from keysentry_dev import local

    IAM_CALLS.variables = variables(template())
    IAM_CALLS.install()
    provision = local.provision

    def provisioned(*args: Any, **kwargs: Any) -> Any:  # the calls that follow are checked against it
        IAM_CALLS.stack = provision(*args, **kwargs)
        return IAM_CALLS.stack

    local.provision = provisioned


def iam_check(calls: list[Call]) -> list[Finding]:
    """Check ``calls``, each against the stack it was made in; the findings (kept for the summary)."""
    before = len(IAM_REPORT.findings)
    iam_checker().check(calls, IAM_REPORT)
    return IAM_REPORT.findings[before:]


@pytest.fixture(autouse=True)
def iam_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    mark = IAM_CALLS.mark(request.node.nodeid)
    yield
    findings = iam_check(IAM_CALLS.since(mark))
    assert not findings, "AWS calls their function's role does not grant:\n" + "\n".join(map(str, findings))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not IAM_CALLS.calls or IAM_CALLS.stack is None:
        return
    counts = {f: sum(1 for c in IAM_CALLS.calls if c.function == f) for f in sorted(IAM_CALLS.functions())}
    unused = iam_checker().unexercised(IAM_REPORT, IAM_CALLS.stack)
    findings = list(dict.fromkeys(str(finding) for finding in IAM_REPORT.findings))
    grants = [f"  {function}: {grant}" for function, grants in unused.items() for grant in grants]
    summary = [
        f"{IAM_REPORT.checked} requests of {len(IAM_CALLS.calls)} AWS calls checked against their "
        f"function's role: {len(findings)} not granted; {len(IAM_REPORT.outside)} made under a "
        "configuration the template cannot deploy (not judged)",
        "calls by function folder: " + ", ".join(f"{f} {n}" for f, n in counts.items()),
        f"{len(grants)} grants no test exercised (not a failure: a reviewer's list)",
    ]
    terminalreporter.write_sep("-", "IAM conformance")
    for line in summary + findings:
        terminalreporter.write_line(line)
    outside = sorted(
        {f"  {c.function}: {c.operation} ({', '.join(why)}) in {c.test}" for c, why in IAM_REPORT.outside}
    )
    detail = [*summary, *findings, "grants no test exercised:", *grants, "not judged:", *outside]
    cache = getattr(config, "cache", None)
    if cache is not None:
        path = cache.mkdir("iam-conformance") / "report.txt"
        path.write_text("\n".join(detail) + "\n")
        terminalreporter.write_line(f"the grants no test exercised, one a line: {path}")
    else:
        for line in detail[len(summary) + len(findings) :]:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _dummy_credentials(monkeypatch)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    for name in ("KEYSENTRY_STACK", "KEYSENTRY_CONFIG_ENV"):  # the CLI reads no stack a shell names
        monkeypatch.delenv(name, raising=False)


@dataclass
class FakeClock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int = 0, *, days: float = 0) -> None:
        self.now += seconds + int(days * 86_400)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Monotonic:
    """A controllable monotonic clock (the authorizer's caches expire on it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mono() -> Monotonic:
    return Monotonic()


# ---------------------------------------------------------------- moto, once per session
#
# Provisioning template.yaml in moto costs seconds; restoring a snapshot of moto's in-memory state
# costs milliseconds. So the resources are created once, and every test starts from a copy of the
# state as it was right after provisioning: no item, message, stream record, subscription, secret
# version or parameter a previous test wrote is visible, and resources a test created are gone.

# service -> account id -> (the account's object, region -> (the backend object, its state))
MotoSnapshot = dict[Any, dict[str, tuple[Any, dict[str, tuple[Any, dict[str, Any]]]]]]
_SHARED = (type(threading.Lock()), type(threading.RLock()), type(threading.Condition()))


def _deepcopy(value: Any, memo: dict[int, Any]) -> Any:
    """copy.deepcopy where locks are shared and moto's SSM parameter map (whose __init__ takes
    arguments that copy cannot supply) is rebuilt; both only for this call."""
    from moto.ssm.models import ParameterDict

    def parameter_dict(original: Any, memo: dict[int, Any]) -> Any:
        new = ParameterDict(original.account_id, original.region_name)
        memo[id(original)] = new
        new.__dict__.update(copy.deepcopy(original.__dict__, memo))
        for name, versions in original.items():
            new[name] = copy.deepcopy(versions, memo)
        return new

    dispatch: dict[type, Any] = copy._deepcopy_dispatch  # type: ignore[attr-defined]
    added: dict[type, Any] = {kind: (lambda obj, memo: obj) for kind in _SHARED}
    added[ParameterDict] = parameter_dict
    dispatch.update(added)
    try:
        return copy.deepcopy(value, memo)
    finally:
        for kind in added:
            dispatch.pop(kind, None)


def _backends() -> list[Any]:
    from moto.core.base_backend import BackendDict

    return list(BackendDict._instances)


def _every_backend_object() -> dict[int, Any]:
    """A deepcopy memo that keeps every backend object itself: backends refer to each other."""
    return {
        id(region): region
        for service in _backends()
        for account in service.values()
        for region in dict.values(account)
    }


def capture_moto() -> MotoSnapshot:
    memo = _every_backend_object()
    return {
        service: {
            account_id: (
                account,
                {name: (region, _deepcopy(region.__dict__, memo)) for name, region in dict.items(account)},
            )
            for account_id, account in service.items()
        }
        for service in _backends()
    }


def restore_moto(snapshot: MotoSnapshot) -> None:
    """Put moto back exactly as ``snapshot`` found it: the same backend objects, their state then.

    Services, accounts and regions that appeared since are reset and dropped, as moto's own reset
    does; the snapshot keeps the objects it holds, so restoring again finds them as they were.
    """
    from moto.core.base_backend import BackendDict

    for service in _backends():
        for account_id, account in list(service.items()):
            if account is not snapshot.get(service, {}).get(account_id, (None,))[0]:
                account.reset()
                del service[account_id]
    memo = {
        id(region): region
        for accounts in snapshot.values()
        for _, regions in accounts.values()
        for region, _ in regions.values()
    }
    for service, accounts in snapshot.items():
        for account_id, (account, regions) in accounts.items():
            dict.__setitem__(service, account_id, account)
            for name in [name for name in dict.keys(account) if name not in regions]:
                dict.__delitem__(account, name)
            for name, (region, state) in regions.items():
                dict.__setitem__(account, name, region)
                region.__dict__ = _deepcopy(state, memo)
    BackendDict._instances[:] = list(snapshot)


@dataclass
class MotoBaselines:
    empty: MotoSnapshot
    stack: Any  # keysentry_dev.template.Stack
    provisioned: MotoSnapshot


def _dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's advice: dummy credentials, a region, and nothing that points at a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # botocore routes ARN-addressed calls (DynamoDB Streams) to account-id endpoints moto does not serve
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")


@pytest.fixture(scope="session")
def moto_baselines() -> Iterator[MotoBaselines]:
    """template.yaml provisioned in moto once; the states before and after, to restore per test."""
    from keysentry import aws
    from keysentry_dev.local import provision
    from moto import mock_aws
    from moto.core.base_backend import BackendDict

    mock = mock_aws()
    with pytest.MonkeyPatch.context() as monkeypatch:
        _dummy_credentials(monkeypatch)
        mock.start()  # resets every backend
        try:
            aws.reset()
            empty = capture_moto()
            stack = provision(template())
            provisioned = capture_moto()
        finally:
            mock.stop(remove_data=False)
            aws.reset()
    yield MotoBaselines(empty, stack, provisioned)
    BackendDict.reset()


def _forget_process_state() -> None:
    """A cold container per test: what a warm one keeps between invocations (the authorizer, the
    API's service and idempotency layer, the scanning keys' provider, unflushed metrics) is reset."""
    authorizer = sys.modules.get("functions.authorizer.handler")
    if authorizer is not None:
        authorizer._authorizer = None
    context = sys.modules.get("keysentry.api.context")
    if context is not None:
        context.reset()
    leaks = sys.modules.get("keysentry.api.leaks")
    if leaks is not None:
        leaks.keys_provider.cache_clear()
    for name, module in list(sys.modules.items()):
        metrics = getattr(module, "metrics", None) if name.startswith("functions.") else None
        if metrics is not None and hasattr(metrics, "clear_metrics"):
            metrics.clear_metrics()


@pytest.fixture
def moto(moto_baselines: MotoBaselines) -> Iterator[None]:
    """An empty moto account, as a fresh ``mock_aws()`` gives, and clients created after it."""
    from keysentry import aws
    from moto import mock_aws

    mock = mock_aws()
    mock.start(reset=False)
    try:
        restore_moto(moto_baselines.empty)
        aws.reset()
        _forget_process_state()
        yield
    finally:
        mock.stop(remove_data=False)
        aws.reset()


@pytest.fixture
def stack(moto: None, moto_baselines: MotoBaselines, monkeypatch: pytest.MonkeyPatch) -> Any:
    """template.yaml's stateful resources in moto, and the functions' environment pointing at them."""
    restore_moto(moto_baselines.provisioned)
    IAM_CALLS.stack = moto_baselines.stack  # the AWS calls of the test are checked against it
    created = replace(
        moto_baselines.stack,
        refs=dict(moto_baselines.stack.refs),
        attrs=copy.deepcopy(moto_baselines.stack.attrs),
    )
    for name, value in created.function_environment().items():
        monkeypatch.setenv(name, value)
    return created


@pytest.fixture
def service(stack: Any, clock: FakeClock) -> Any:
    from keysentry.service import KeyService
    from keysentry.settings import Settings

    return KeyService.from_settings(Settings.from_env(), clock=clock)


def all_items(table: str) -> list[dict[str, Any]]:
    from keysentry import aws

    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


@pytest.fixture
def lambda_context() -> Any:
    @dataclass
    class Context:
        function_name: str = "keysentry-test"
        memory_limit_in_mb: int = 512
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:keysentry-test"
        aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    return Context()


__all__ = ["EVENTS", "ROOT", "T0", "FakeClock", "Monotonic", "all_items", "os"]
