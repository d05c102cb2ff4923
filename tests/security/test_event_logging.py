"""Promise: an operator who sets ``POWERTOOLS_LOGGER_LOG_EVENT=true`` on a function still gets no
key in its log. Powertools would log the whole event: the authorizer's X-Api-Key, a GitHub leak
report's body, the self-service API's headers. Every handler passes ``log_event=False``, which
Powertools prefers to the environment variable.

The variable is read when the handler is decorated, so each handler module is loaded afresh (under
another name, leaving the imported one alone) with the variable set.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.api_helpers import EVENTS
from tests.integration.authz_helpers import effect, event
from tests.security.test_debug_logging import Everything

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))


def fresh(function: str, capture: Everything) -> ModuleType:
    path = ROOT / "functions" / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"functions.{function}.handler_log_event", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.logger.setLevel("DEBUG")
    module.logger.addHandler(capture)
    return module


@pytest.fixture
def log_event(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The variable set, and DEBUG (so the handlers' own lines show that the capture works)."""
    from functions.api import handler as api_handler
    from functions.authorizer import handler as authorizer_handler

    variables = stack.template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in stack.environment(variables).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    monkeypatch.setattr(authorizer_handler, "_authorizer", None)
    saved = [(lg, lg.log_level) for lg in (authorizer_handler.logger, api_handler.logger)]
    try:
        yield
    finally:  # the fresh loggers share the imported ones' logging.Logger
        for lg, level in saved:
            lg.setLevel(level)


def test_log_event_set_by_an_operator_logs_no_key_from_the_authorizer_or_the_api(
    log_event: None,
    api_service: Any,
    lambda_context: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    issued = api_service.create("acme", actor="ops", scopes=["prices:read"])
    token = issued.token
    secret_part = token[-(50 + 6) : -6]

    capture = Everything()
    authorizer = fresh("authorizer", capture)
    assert effect(
        authorizer.lambda_handler(event("authorizer_rest_request_valid", token), lambda_context)
    ) == ("Allow")

    api = fresh("api", capture)
    doc = json.loads((EVENTS / "api_self.json").read_text())
    doc["headers"] = {**doc["headers"], "X-Api-Key": token}
    doc["multiValueHeaders"] = {k: [v] for k, v in doc["headers"].items()}
    api.lambda_handler(doc, lambda_context)
    report = json.loads((EVENTS / "api_leaks_github.json").read_text())
    report["body"] = json.dumps(
        [{"token": token, "type": "keysentry_api_key", "url": "https://github.com/x"}]
    )
    api.lambda_handler(report, lambda_context)

    try:
        out, err = capfd.readouterr()
    finally:
        authorizer.logger.removeHandler(capture)
        api.logger.removeHandler(capture)
    text = "\n".join([*capture.lines, out, err])
    assert any("decision" in line for line in capture.lines), "the handlers' own lines were captured"
    leaked = secret_part in text
    assert not leaked, "the event, with its key, was logged"


@pytest.mark.parametrize("function", HANDLERS)
def test_every_handler_turns_event_logging_off_explicitly(function: str) -> None:
    source = (ROOT / "functions" / function / "handler.py").read_text()
    decorators = re.findall(r"@logger\.inject_lambda_context\(([^)]*)\)", source)
    assert decorators, f"{function}: no inject_lambda_context"
    assert all("log_event=False" in args for args in decorators), f"{function}: log_event not False"
