"""API Gateway as a key's holder needs it, read back from moto; and a stand-in for CloudFormation's
response URL. Shared by the stream tests and the reconciliation tests, so both hold API Gateway to
the same picture."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

from keysentry import aws

STAGE = "dev"


def api_keys() -> dict[str, tuple[str, bool, list[str]]]:
    """API Gateway as a key's holder would need it: name -> (value, enabled, usage plan names)."""
    apigateway = aws.client("apigateway")
    plans = {p["id"]: p["name"] for p in apigateway.get_usage_plans()["items"]}
    keys = {}
    for key in apigateway.get_api_keys(includeValues=True)["items"]:
        on = sorted(plans[p["id"]] for p in apigateway.get_usage_plans(keyId=key["id"])["items"])
        keys[key["name"]] = (key["value"], key["enabled"], on)
    return keys


def on(plan: str) -> list[str]:
    return [f"keysentry-{STAGE}-{plan}"]


class CloudFormation:
    """A local stand-in for CloudFormation's pre-signed response URL: the answers it was PUT."""

    def __init__(self) -> None:
        answers: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.answers = answers
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/answer"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def request(self, request_type: str) -> dict[str, Any]:
        """A custom resource event of UsagePlansAtDeploy, answered here."""
        return {
            "RequestType": request_type,
            "ResponseURL": self.url,
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/keysentry/1",
            "RequestId": "r-1",
            "LogicalResourceId": "UsagePlansAtDeploy",
            "ResourceType": "Custom::UsagePlans",
        }
