"""Scheduled (EventBridge) refresh of GitHub's secret scanning public keys: thin over
keysentry.scanning_keys."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.scanning_keys import Outcome, answer_deploy, is_deploy_request, refresh
from keysentry.settings import ScanningKeysSettings

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not is_deploy_request(event):
        return _refresh().as_dict()
    outcome = Outcome(stored=False, reason="the stack is being deleted: the parameter is left as it is")
    try:
        if event["RequestType"] in ("Create", "Update"):
            outcome = _refresh()
    except Exception as error:  # CloudFormation must get an answer, or the deployment hangs
        logger.exception("GitHub scanning keys not refreshed at deploy")
        outcome = Outcome(stored=False, reason=f"refresh failed: {type(error).__name__}")
    finally:
        answer_deploy(event, outcome)
    return outcome.as_dict()


def _refresh() -> Outcome:
    settings = ScanningKeysSettings.load()  # ConfigurationError when the parameter is not set
    parameter, url = settings.parameter, settings.url
    try:
        outcome = refresh(url=url, parameter=parameter)
    except Exception:  # the parameter could not be written: still a failed refresh, for the alarm
        metrics.add_metric(name="ScanningKeysRefreshFailed", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name="ScanningKeysRefreshed", unit=MetricUnit.Count, value=int(outcome.stored))
    metrics.add_metric(name="ScanningKeysRefreshFailed", unit=MetricUnit.Count, value=int(not outcome.stored))
    if outcome.stored:
        metrics.add_metric(name="ScanningKeysStored", unit=MetricUnit.Count, value=outcome.keys)
        logger.info("GitHub scanning keys stored", **outcome.as_dict(), url=url)
    else:
        logger.error(
            "GitHub scanning keys not refreshed; the parameter keeps its keys", **outcome.as_dict(), url=url
        )
    return outcome
