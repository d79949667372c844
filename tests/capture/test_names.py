"""Capture blob names: render and parse under the default and custom formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statepump.core.captureformat import (
    DEFAULT_NAME_FORMAT,
    NAME_FIELDS,
    CaptureFormatError,
    CaptureName,
    name_prefix,
    parse_name,
    render_name,
    validate_name_format,
)

CUSTOM = "{Year}-{Month}-{Day}/{EventHub}@{Namespace}/p{PartitionId}/{Hour}h{Minute}m{Second}s"

words = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_."), min_size=1, max_size=12)
times = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)).map(
    lambda t: t.replace(microsecond=0)
)


def test_default_format_renders_the_documented_example() -> None:
    when = datetime(2017, 12, 8, 3, 3, 17, tzinfo=UTC)
    assert render_name(DEFAULT_NAME_FORMAT, "ns", "hub", "0", when) == "ns/hub/0/2017/12/08/03/03/17.avro"


def test_parse_default_name() -> None:
    got = parse_name(DEFAULT_NAME_FORMAT, "mynamespace/myeventhub/0/2023/07/17/17/27/57.avro")
    assert got == CaptureName(datetime(2023, 7, 17, 17, 27, 57, tzinfo=UTC), "mynamespace", "myeventhub", "0")


@given(ns=words, hub=words, partition=st.integers(0, 1023).map(str), when=times)
def test_render_then_parse_is_identity_default(ns: str, hub: str, partition: str, when: datetime) -> None:
    name = render_name(DEFAULT_NAME_FORMAT, ns, hub, partition, when)
    assert parse_name(DEFAULT_NAME_FORMAT, name) == CaptureName(when, ns, hub, partition)
    assert name.startswith(name_prefix(DEFAULT_NAME_FORMAT, ns, hub, partition))


@given(ns=words, hub=words, partition=st.integers(0, 1023).map(str), when=times)
def test_render_then_parse_is_identity_custom_order(ns: str, hub: str, partition: str, when: datetime) -> None:
    name = render_name(CUSTOM, ns, hub, partition, when)
    assert parse_name(CUSTOM, name) == CaptureName(when, ns, hub, partition)


def test_names_sort_by_window_time() -> None:
    fmt = DEFAULT_NAME_FORMAT
    names = [
        parse_name(fmt, "n/h/0/2020/01/01/00/00/10.avro"),
        parse_name(fmt, "n/h/0/2019/12/31/23/59/59.avro"),
        parse_name(fmt, "n/h/0/2020/01/01/00/00/09.avro"),
    ]
    assert [n.window_open.second for n in sorted(n for n in names if n)] == [59, 9, 10]


@pytest.mark.parametrize(
    "name",
    [
        "ns/hub/0/2017/12/08/03/03/17.json",  # other suffix
        "ns/hub/0/2017/12/08/03/03.avro",  # a field short
        "ns/hub/0/2017/13/08/03/03/17.avro",  # month 13
        "ns/hub/0/2017/02/30/03/03/17.avro",  # 30 February
        "ns/hub/0/17/12/08/03/03/17.avro",  # two-digit year
        "ns/hub/0/x/2017/12/08/03/03/17.avro",  # a slash inside a field
        "",
    ],
)
def test_parse_rejects_what_is_not_a_capture_name(name: str) -> None:
    assert parse_name(DEFAULT_NAME_FORMAT, name) is None


def test_field_used_twice_must_agree() -> None:
    fmt = "{PartitionId}/" + DEFAULT_NAME_FORMAT
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = render_name(fmt, "n", "h", "7", when)
    assert name == "7/n/h/7/2020/01/02/03/04/05.avro"
    assert parse_name(fmt, name) == CaptureName(when, "n", "h", "7")
    assert parse_name(fmt, "6/n/h/7/2020/01/02/03/04/05.avro") is None


@pytest.mark.parametrize("missing", NAME_FIELDS)
def test_format_lacking_a_mandatory_field_is_named(missing: str) -> None:
    fmt = DEFAULT_NAME_FORMAT.replace("{" + missing + "}", "x")
    with pytest.raises(CaptureFormatError, match=r"lacks the mandatory field\(s\) \{" + missing + r"\}"):
        validate_name_format(fmt)
    with pytest.raises(CaptureFormatError):
        parse_name(fmt, "anything.avro")


def test_unknown_field_and_unbalanced_brace_are_named() -> None:
    with pytest.raises(CaptureFormatError, match=r"unknown field \{Week\}"):
        validate_name_format(DEFAULT_NAME_FORMAT + "/{Week}")
    with pytest.raises(CaptureFormatError, match="unbalanced brace"):
        validate_name_format(DEFAULT_NAME_FORMAT + "/{oops")


def test_prefix_stops_at_the_first_time_field() -> None:
    assert name_prefix(DEFAULT_NAME_FORMAT, "ns", "hub", "12") == "ns/hub/12/"
    assert name_prefix(CUSTOM, "ns", "hub", "12") == ""
    flat = "archive/{Namespace}_{EventHub}_{PartitionId}_{Year}{Month}{Day}{Hour}{Minute}{Second}"
    assert name_prefix(flat, "ns", "hub", "1") == "archive/ns_hub_1_"


def test_naive_time_is_refused() -> None:
    with pytest.raises(CaptureFormatError, match="no time zone"):
        render_name(DEFAULT_NAME_FORMAT, "n", "h", "0", datetime(2020, 1, 1))
