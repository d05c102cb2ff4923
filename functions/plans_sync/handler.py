"""REST usage plans: made from the plans at deploy (a CloudFormation custom resource), and each key's
API key kept in step from the keys table's stream: thin over keysentry.plans_sync."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.deploy import answer, is_deploy_request
from keysentry.gateway import Gateway
from keysentry.plans_sync import KeySync, PlansOutcome, parse_stages, reconcile, sync_usage_plans, table_keys
from keysentry.settings import PlansSyncSettings
from keysentry.store import KeyStore

logger = Logger()
metrics = Metrics()
# left of the timeout when the backfill stops: one key's calls (the SDK's retries) and the answer
RESERVE_MS = 30_000
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, gateway: Gateway | None = None
) -> dict[str, Any]:
    if is_deploy_request(event):
        return _deploy(event, gateway or Gateway(), context)
    settings = PlansSyncSettings.load()
    store = KeyStore(settings.keys_table)
    sync = KeySync(gateway or Gateway(), store.get, settings.stage, settings.plans().default)

    def record_handler(record: DynamoDBRecord) -> None:
        stream = record.raw_event.get("dynamodb", {})
        sync.record(stream.get("OldImage"), stream.get("NewImage"))

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failed = len(response.get("batchItemFailures", []))
    metrics.add_metric(name="ApiKeysChanged", unit=MetricUnit.Count, value=len(sync.changes))
    metrics.add_metric(name="ApiKeyRecordsFailed", unit=MetricUnit.Count, value=failed)
    logger.info("stream batch", records=len(event.get("Records", [])), changes=sync.changes, failed=failed)
    return dict(response)


def _deploy(event: dict[str, Any], gateway: Gateway, context: LambdaContext) -> dict[str, Any]:
    """Create or update: the usage plans from the plans, then every key's API key reconciled (the
    backfill). Delete: the usage plans and API keys are left (keys may be on them)."""
    outcome, success = PlansOutcome(), True
    reason, data = "the stack's usage plans and API keys are left as they are", dict[str, str]()
    try:
        if event["RequestType"] in ("Create", "Update"):
            settings = PlansSyncSettings.load()
            stages = parse_stages(settings.usage_plan_stages)
            outcome = sync_usage_plans(settings.plans(), settings.stage, stages, gateway)
            logger.info("usage plans", usage_plans=outcome.as_dict(), stages=[f"{a}:{s}" for a, s in stages])
            if outcome.left:
                logger.warning("usage plans left: their plans are no longer in Plans", left=outcome.left)
            reason, data = _backfill(settings, gateway, context, outcome.reason())
    except Exception as error:  # CloudFormation must get an answer, or the deployment hangs
        logger.exception("usage plans not made")
        success, reason = False, f"usage plans not made: {type(error).__name__}: {str(error)[:300]}"
    finally:
        answer(event, success=success, reason=reason, data={"Left": ",".join(outcome.left), **data})
    return {"success": success, "reason": reason, **outcome.as_dict(), **data}


def _backfill(
    settings: PlansSyncSettings, gateway: Gateway, context: LambdaContext, plans_reason: str
) -> tuple[str, dict[str, str]]:
    """Every key's API key brought in step, until RESERVE_MS before the timeout. Whatever happens
    here, the deployment succeeds (the usage plans are made): the answer says what was done, and
    what was not is for `keysentry plans sync`."""
    store = KeyStore(settings.keys_table)
    sync = KeySync(gateway, store.get, settings.stage, settings.plans().default)
    try:
        done = reconcile(
            sync, table_keys(store), out_of_time=lambda: context.get_remaining_time_in_millis() < RESERVE_MS
        )
    except Exception as error:  # API Gateway or the table could not be read at all
        logger.exception("API keys not reconciled")
        text = f"API keys not reconciled ({type(error).__name__}): run `keysentry plans sync`"
        return f"{plans_reason}; {text}", {"ApiKeysFinished": "false"}
    logger.info("API keys reconciled", **done.as_dict())
    if done.failed or not done.finished:
        logger.warning("API keys not all reconciled", failed=done.failed, finished=done.finished)
    metrics.add_metric(name="ApiKeysChanged", unit=MetricUnit.Count, value=len(done.changes))
    metrics.add_metric(name="ApiKeysFailed", unit=MetricUnit.Count, value=len(done.failed))
    data = {
        "ApiKeysChecked": str(done.checked),
        "ApiKeysChanged": str(len({kid for kid, _ in done.changes})),
        "ApiKeysFailed": str(len(done.failed)),
        "ApiKeysFinished": str(done.finished).lower(),
    }
    return f"{plans_reason}; {done.summary()}", data
