"""deploy/azure/main.bicep, parsed with pycep-parser for the deploy tests.

>>> sorted(parse("param name string = 'x'")["parameters"])
['name']
"""

from __future__ import annotations

import json
from typing import Any

from pycep import BicepParser

from tests.deploy.files import DEPLOY

BICEP = DEPLOY / "azure" / "main.bicep"
PARAMETERS = DEPLOY / "azure" / "main.parameters.json"


def parse(text: str) -> dict[str, Any]:
    """Bicep source as pycep's JSON (parameters, variables, resources, outputs); lark errors on bad syntax."""
    # Round-trip through JSON: the parser's TypedDicts become plain dicts to index freely.
    result: dict[str, Any] = json.loads(json.dumps(BicepParser().parse(text=text)))
    return result


TEMPLATE = parse(BICEP.read_text())
