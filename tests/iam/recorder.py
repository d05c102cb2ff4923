"""Record every AWS call made beneath a ``functions/<name>/handler.py``, whoever made the client.

A botocore event hook (``before-parameter-build``, emitted by every client before its request is
built, so also for calls that a Stubber answers or that moto refuses) is added to botocore's
built-in handlers, which every botocore session registers when it is created: the sessions
``keysentry.aws`` makes (again after each reset) and the ones boto3 makes for the clients
Powertools creates itself. A call is attributed to the function whose handler is on the Python
call stack; calls made by the tests themselves (provisioning, arranging, asserting) are not.
Each call keeps the function's configuration (the template's environment variables as they were
then), so that its policy can be read for the parameters the test ran it with. Nothing of a
call's payload is kept: only its action, resource and condition keys.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore import handlers

from tests.iam.calls import Resolver, requests_for
from tests.iam.policy import Request

ACCOUNT = "123456789012"  # moto's default account, as keysentry_dev.local provisions into


@dataclass(frozen=True)
class Call:
    function: str  # the folder under functions/
    operation: str  # service.Operation, for the reader
    requests: tuple[Request, ...]
    environment: tuple[tuple[str, str], ...]
    test: str
    stack: Any = None  # the provisioned stack current when the call was made
    error: str = ""  # the recorder could not name the call's resource (a defect here, reported)


@dataclass
class Recorder:
    functions_root: Path
    variables: frozenset[str] = frozenset()  # the environment variable names the template sets
    resolver: Resolver | None = None
    calls: list[Call] = field(default_factory=list)
    test: str = ""
    stack: Any = None  # the stack provisioned last (keysentry_dev.local.Stack): calls are checked against it
    _handlers: dict[str, str] = field(default_factory=dict)
    _installed: bool = False

    def install(self) -> None:
        """Every botocore session created from now on reports its clients' calls here."""
        self._handlers = {
            str(path.resolve()): path.parent.name for path in self.functions_root.glob("*/handler.py")
        }
        if not self._installed:
            handlers.BUILTIN_HANDLERS.append(("before-parameter-build", self._on_call))
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            handlers.BUILTIN_HANDLERS.remove(("before-parameter-build", self._on_call))
            self._installed = False

    def mark(self, test: str) -> int:
        self.test = test
        return len(self.calls)

    def since(self, mark: int) -> list[Call]:
        return self.calls[mark:]

    def functions(self, calls: Iterable[Call] | None = None) -> set[str]:
        return {call.function for call in (self.calls if calls is None else calls)}

    def _caller(self) -> str | None:
        frame = sys._getframe(2)
        while frame is not None:
            function = self._handlers.get(frame.f_code.co_filename)
            if function is not None:
                return function
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def _on_call(self, params: Any, model: Any, context: Any = None, **_: Any) -> None:
        function = self._caller()
        if function is None:
            return
        operation = f"{model.service_model.service_name}.{model.name}"
        region = (context or {}).get("client_region") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        environment = tuple(sorted((k, os.environ[k]) for k in self.variables if k in os.environ))
        try:
            requests = requests_for(
                model, params, region, ACCOUNT, *([self.resolver] if self.resolver else [])
            )
            self.calls.append(Call(function, operation, requests, environment, self.test, self.stack))
        except Exception as error:  # never break the call itself: the check reports it
            why = f"{type(error).__name__}: {error}"
            self.calls.append(Call(function, operation, (), environment, self.test, self.stack, why))


def moto_resolver(kind: str, region: str, account: str, name: str) -> str | None:
    """A KMS alias or a secret's name -> its ARN, from moto's in-process state."""
    try:
        if kind == "kms-alias":
            from moto.kms.models import kms_backends

            backend = kms_backends[account][region]
            key_id = backend.get_key_id_from_alias(name)
            return f"arn:aws:kms:{region}:{account}:key/{key_id}" if key_id else None
        if kind == "secret":
            from moto.secretsmanager.models import secretsmanager_backends

            return str(secretsmanager_backends[account][region].describe_secret(name).arn)
    except Exception:
        return None
    return None
