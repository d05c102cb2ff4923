"""A stand-in for a deployed keysentry stack: template.yaml's resources under CloudFormation-style
names, and a CloudFormation stack whose outputs name them, as DescribeStacks answers for a deployed
keysentry (moto cannot run the SAM template itself).

Run as ``python -m tests.integration.stack_helpers NAME``, it serves one for another process: a moto
server with the stack in it, and the sample API through the real authorizer, backend and usage
function (the local gateway); it prints ``endpoint URL`` and ``api URL`` and runs until its standard
input closes."""

from __future__ import annotations

import logging
import os
import sys

from keysentry import aws

from tests.conftest import ROOT, template


def create_cloudformation_stack(name: str, outputs: dict[str, str], parameters: dict[str, str]) -> None:
    """A stack in moto's CloudFormation that answers DescribeStacks as keysentry's would (moto cannot
    run the SAM template: its outputs are given as values, its parameters with their defaults)."""
    from keysentry_dev.local_stack import create_cloudformation_stack as create

    create(name, outputs, parameters, template())


def serve_stack(name: str) -> None:
    from keysentry_dev.gateway import LocalGateway, serve
    from keysentry_dev.local import provision
    from keysentry_dev.local_stack import name_stack
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
    made = provision(template(), name=cloudformation_names(name, seed=5), stack_name=None)
    with serve(LocalGateway(made, ROOT, "rest")) as url:
        name_stack(made, name, {"SampleApiUrl": url})
        print(f"endpoint {endpoint}", flush=True)
        print(f"api {url}", flush=True)
        sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    serve_stack(sys.argv[1])
