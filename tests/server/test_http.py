"""The sans-I/O core: the request parser and router under random input, the JSON encoder of states."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pyrsistent import freeze, thaw

from statepump.core import statejson
from statepump.core.httpapi import HttpError, Limits, Request, RequestParser, StateQuery, Watch, route

LIMITS = Limits()


@given(st.lists(st.binary(max_size=512), max_size=8))
def test_parser_yields_requests_or_an_http_error(pieces: list[bytes]) -> None:
    parser = RequestParser(LIMITS)
    error: HttpError | None = None
    try:
        for piece in pieces:
            for request in parser.feed(piece):
                assert isinstance(request.target, bytes)
    except HttpError as raised:
        error = raised
    if error is not None:
        assert 400 <= error.status < 500
        assert error.message


@given(st.binary(max_size=300))
def test_router_answers_any_target_with_a_route_or_a_4xx(target: bytes) -> None:
    result: object
    try:
        result = route(Request("GET", b"/v1/state/" + target), LIMITS)
    except HttpError as error:
        result = error.status
    assert isinstance(result, StateQuery) or 400 <= result < 500  # type: ignore[operator]


@given(st.lists(st.text(min_size=1), max_size=4))
def test_escaped_segments_round_trip(segments: list[str]) -> None:
    from urllib.parse import quote

    target = ("/v1/state/" + "/".join(quote(s, safe="") for s in segments)).encode()
    assert route(Request("GET", target), LIMITS) == StateQuery(tuple(segments), None, LIMITS.default_wait)


def test_pipelined_requests_come_out_in_order() -> None:
    parser = RequestParser(LIMITS)
    requests = parser.feed(b'GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\nIf-None-Match: "3"\r\n\r\nGET /c HT')
    assert [(r.method, r.target, r.if_none_match) for r in requests] == [("GET", b"/a", None), ("HEAD", b"/b", b'"3"')]
    assert parser.in_progress
    assert [r.target for r in parser.feed(b"TP/1.0\r\n\r\n")] == [b"/c"]


def test_watch_route() -> None:
    assert route(Request("GET", b"/v1/watch?path=a%20b/c"), LIMITS) == Watch(("a b", "c"))
    assert route(Request("GET", b"/v1/watch"), LIMITS) == Watch(())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_encoding_a_frozen_value_equals_encoding_the_plain_one(value: Any) -> None:
    frozen = freeze(value)
    assert json.loads(statejson.encode(frozen)) == value
    assert b"".join(statejson.iter_encode(frozen, 16)) == statejson.encode(frozen)
    assert thaw(frozen) == value


def test_big_containers_stream_in_bounded_chunks() -> None:
    big = freeze({f"k{i}": list(range(i % 7)) for i in range(5000)})
    chunks = list(statejson.iter_encode(big, 4096))
    assert len(chunks) > 10
    assert max(map(len, chunks)) < 8192
    assert json.loads(b"".join(chunks)) == thaw(big)
