"""CloudFormation custom resources: tell whether an event is one, and answer it (its pre-signed URL).

The usage plans are made at deploy by a custom resource (``UsagePlansAtDeploy``): CloudFormation
cannot loop over the ``Plans`` parameter's JSON, so a function does it and answers here.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any, Final

TIMEOUT_S: Final = 5.0
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def is_deploy_request(event: Any) -> bool:
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def answer(event: dict[str, Any], *, success: bool, reason: str, data: dict[str, str] | None = None) -> None:
    """PUT the resource's result to CloudFormation's response URL (https, or http to this host)."""
    url = str(event["ResponseURL"])
    parts = urllib.parse.urlsplit(url)
    if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS)):
        raise ValueError("the CloudFormation response URL must be https")
    body = {
        "Status": "SUCCESS" if success else "FAILED",
        "Reason": reason[:1024] or "done",
        "PhysicalResourceId": event.get("PhysicalResourceId")
        or str(event.get("LogicalResourceId", "resource")),
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "NoEcho": False,
        "Data": data or {},
    }
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
        response.read()
