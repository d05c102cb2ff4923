"""A stand-in for a deployed keysentry stack: template.yaml's resources under CloudFormation-style
names, and a CloudFormation stack whose outputs name them, as DescribeStacks answers for a deployed
keysentry (moto cannot run the SAM template itself).

Run as ``python -m tests.integration.stack_helpers NAME``, it serves one for another process: a moto
server with the stack in it, and the sample API through the real authorizer, backend and usage
function (the local gateway); it prints ``endpoint URL`` and ``api URL`` and runs until its standard
input closes."""

from __future__ import annotations

import json
import logging
import os
import sys

from keysentry import aws

from tests.conftest import ROOT, template


def create_cloudformation_stack(name: str, outputs: dict[str, str], parameters: dict[str, str]) -> None:
    """A stack in moto's CloudFormation that answers DescribeStacks as keysentry's would (moto cannot
    run the SAM template: its outputs are given as values, its parameters with their defaults)."""
    body = {
        "Parameters": {
            key: {"Type": "String", "Default": str(spec.get("Default", ""))}
            for key, spec in template()["Parameters"].items()
        },
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    aws.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )


def serve_stack(name: str) -> None:
    from keysentry_dev.gateway import LocalGateway, serve
    from keysentry_dev.local import provision
    from keysentry_dev.template import REGION, cloudformation_names
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    aws.reset()
    made = provision(template(), name=cloudformation_names(name, seed=5))
    with serve(LocalGateway(made, ROOT, "rest")) as url:
        create_cloudformation_stack(name, {**made.outputs(), "SampleApiUrl": url}, {})
        print(f"endpoint {endpoint}", flush=True)
        print(f"api {url}", flush=True)
        sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    serve_stack(sys.argv[1])
