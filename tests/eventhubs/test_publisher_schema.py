"""Publisher's schema and if_sequence: the same checks and bodies as the writer commands (no hub needed)."""

from __future__ import annotations

import asyncio

import pytest

from statepump import Publisher, Refused, Schema
from statepump.core.writecheck import set_body

SCHEMA = Schema.from_document({"properties": {"rps": {"type": "integer", "minimum": 1}}})


def test_the_publisher_refuses_what_the_schema_forbids_before_any_connection() -> None:
    publisher = Publisher(connection_string="Endpoint=sb://127.0.0.1/;EntityPath=hub", schema=SCHEMA)
    with pytest.raises(Refused, match=r"^schema: rps: 0 is less than the minimum of 1 \(minimum\)$"):
        asyncio.run(publisher.set("rps", 0))
    asyncio.run(publisher.check([set_body("rps", 3, if_sequence=7)]))  # valid: no refusal


def test_if_sequence_is_written_on_the_change_not_on_its_test() -> None:
    assert set_body("rps", 3, expect=2, if_sequence=7) == (
        b'{"ops":[{"op":"test","path":"rps","value":2},{"op":"set","path":"rps","value":3,"if_sequence":7}]}'
    )
