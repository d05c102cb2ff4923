"""The copy of template.yaml the Serverless Application Repository takes: without the
``AWS::LanguageExtensions`` transform, which the repository refuses (docs/deploy.md).

keysentry uses that transform only to resolve two parameter-based ``!If`` in the sample APIs'
properties, which the SAM transform alone would misread (serverless-application-model#1553). The
copy gives each its value under the template's defaults: the sample REST API requires no API Gateway
API keys (``UsageIdentifier`` false) and the sample HTTP API reads simple responses
(``AuthorizerHttpResponse`` simple). An owner's own APIs are unaffected.

    python -m keysentry_dev.publishable [template.yaml] [template-sar.yaml]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

TRANSFORMS: Final = "Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]"
# each line the transform resolves -> its value under the template's defaults
RESOLVED: Final = {
    TRANSFORMS: "Transform: AWS::Serverless-2016-10-31",
    "ApiKeyRequired: !If [ManagesUsagePlans, true, false]": "ApiKeyRequired: false",
    "EnableSimpleResponses: !If [HttpSimpleResponses, true, false]": "EnableSimpleResponses: true",
    "HttpSimpleResponses: !Equals [!Ref AuthorizerHttpResponse, simple]": "",  # then used nowhere
}


def publishable(text: str) -> str:
    """``text`` with each line of :data:`RESOLVED` replaced; a ValueError when one is not there
    exactly once (the template changed: this copy must change with it)."""
    lines = text.splitlines(keepends=True)
    for found, value in RESOLVED.items():
        at = [i for i, line in enumerate(lines) if line.split("#", 1)[0].strip() == found]
        if len(at) != 1:
            raise ValueError(f"template.yaml: expected one line {found!r}, found {len(at)}")
        line = lines[at[0]]
        indent = line[: len(line) - len(line.lstrip())]
        lines[at[0]] = f"{indent}{value}\n" if value else ""
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0] if args else "template.yaml")
    target = Path(args[1] if len(args) > 1 else "template-sar.yaml")
    target.write_text(publishable(source.read_text()))
    print(f"{target}: {source} without AWS::LanguageExtensions, for the Serverless Application Repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
