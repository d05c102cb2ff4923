"""``keysentry plans sync``: every key's API Gateway API key reconciled with the key's record, as
the deployment's custom resource does (docs/plans.md), printing what changed."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from keysentry.cli.failures import EXIT_AWS

if TYPE_CHECKING:
    from keysentry.cli.output import Output
    from keysentry.cli.stack import Services


def cmd_plans_sync(args: argparse.Namespace, out: Output, service: Services) -> int:
    """The same reconciliation as the deployment's, without its time limit; non-zero if a key failed."""
    from keysentry.gateway import Gateway
    from keysentry.plans_sync import KeySync, reconcile, table_keys
    from keysentry.settings import KEYS_TABLE, PlansSyncSettings
    from keysentry.store import KeyStore

    settings = service.settings(PlansSyncSettings, (KEYS_TABLE.name,))
    store = KeyStore(settings.keys_table)
    sync = KeySync(Gateway(), store.get, settings.stage, settings.plans().default)
    done = reconcile(sync, table_keys(store), dry_run=args.dry_run)
    head = f"stage {settings.stage}, keys table {settings.keys_table}, default plan {sync.default_plan}"
    lines = [head + (" (dry run: nothing is changed)" if args.dry_run else "")]
    lines += [f"{kid}  {change}" for kid, change in done.changes]
    lines += [f"{kid}  FAILED: {reason}" for kid, reason in done.failed]
    lines.append(done.summary())
    doc = {"stage": settings.stage, "default_plan": sync.default_plan, **done.as_dict()}
    out.emit(doc, "\n".join(lines))
    return EXIT_AWS if done.failed else 0
