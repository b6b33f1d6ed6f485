"""GA4 items (``pr<N>``): token splitting, codes, numbers, custom parameters (SPEC 2.0)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.sources.ga4_items import (
    ITEM_FIELDS,
    is_item_param,
    item_order,
    parse_item,
    split_tokens,
)

SPEC_EXAMPLE = (
    "nmTriblend Android T-Shirt~id12345~pr15.25~brGoogle~caApparel~k0item_category_2~v0Mens"
    "~vaGray~qt1"
)
CODE_OF = {key: code for code, (key, _) in ITEM_FIELDS.items()}
NUMERIC_KEYS = [key for key, numeric in ITEM_FIELDS.values() if numeric]
TEXT_KEYS = [key for key, numeric in ITEM_FIELDS.values() if not numeric]


def encode_item(item: dict[str, Any]) -> str:
    """The ``pr<N>`` value gtag would write for ``item``: ``~`` doubled, custom params as k/v."""

    def escape(text: str) -> str:
        return text.replace("~", "~~")

    tokens: list[str] = []
    custom = 0
    for key, value in item.items():
        text = repr(value) if isinstance(value, float) else str(value)
        code = CODE_OF.get(key)
        if code is not None:
            tokens.append(code + escape(text))
        else:
            tokens.append(f"k{custom}{escape(key)}")
            tokens.append(f"v{custom}{escape(text)}")
            custom += 1
    return "~".join(tokens)


# --- split_tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        ("", [""]),
        ("idA", ["idA"]),
        ("idA~nmB", ["idA", "nmB"]),
        ("nmA~~B~idC", ["nmA~B", "idC"]),
        ("nmA~~~idC", ["nmA~", "idC"]),
        ("nm~~~~x~idC", ["nm~~x", "idC"]),
        ("idA~", ["idA", ""]),
        ("nmA~~", ["nmA~"]),
        ("~idA", ["", "idA"]),
    ],
)
def test_split_tokens(value: str, tokens: list[str]) -> None:
    assert split_tokens(value) == tokens


@given(st.lists(st.text(min_size=1).filter(lambda t: not t.startswith("~")), min_size=1))
def test_split_tokens_round_trip(tokens: list[str]) -> None:
    assert split_tokens("~".join(t.replace("~", "~~") for t in tokens)) == tokens


# --- parse_item -------------------------------------------------------------------------------


def test_spec_example() -> None:
    assert parse_item(SPEC_EXAMPLE) == {
        "item_id": "12345",
        "item_name": "Triblend Android T-Shirt",
        "price": 15.25,
        "item_brand": "Google",
        "item_category": "Apparel",
        "item_category_2": "Mens",
        "item_variant": "Gray",
        "quantity": 1,
    }


def test_every_code() -> None:
    value = "~".join(f"{code}{index}" for index, code in enumerate(ITEM_FIELDS))
    item = parse_item(value)
    assert item is not None
    assert item == {key: index for index, (key, _) in enumerate(ITEM_FIELDS.values())} | {
        key: str(index) for index, (key, numeric) in enumerate(ITEM_FIELDS.values()) if not numeric
    }


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("3", 3),
        ("-2", -2),
        ("10.01", 10.01),
        ("0", 0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("abc", "abc"),
        ("", ""),
        ("nan", "nan"),
        ("inf", "inf"),
        ("1_000", "1_000"),
        (" 3", " 3"),
        ("\u0661\u0662", "\u0661\u0662"),
        ("99999999999999999999", 1e20),
    ],
)
def test_numbers(text: str, number: Any) -> None:
    item = parse_item(f"idA~pr{text}~qt{text}~ds{text}~lp{text}")
    assert item is not None
    for key in ("price", "quantity", "discount", "index"):
        assert item[key] == number
        assert type(item[key]) is type(number)


def test_integral_text_is_int_and_decimal_is_float() -> None:
    item = parse_item("idA~pr10.01~qt3")
    assert item is not None
    assert isinstance(item["quantity"], int)
    assert isinstance(item["price"], float)


@pytest.mark.parametrize(
    "value", ["", "brGoogle~pr1", "id~nm", "id~nm~caX", "x", "~", "~~", "k0id~v0x", "zzid"]
)
def test_item_without_id_or_name_is_dropped(value: str) -> None:
    assert parse_item(value) is None


@pytest.mark.parametrize(("value", "key"), [("idA", "item_id"), ("nmA", "item_name")])
def test_id_or_name_is_enough(value: str, key: str) -> None:
    assert parse_item(value) == {key: "A"}


def test_literal_tilde_in_values() -> None:
    assert parse_item("idA~~B~nmC~~~~D~~") == {"item_id": "A~B", "item_name": "C~~D~"}


def test_repeated_code_last_wins() -> None:
    assert parse_item("idA~idB") == {"item_id": "B"}


def test_custom_params_paired_by_index_in_any_order() -> None:
    item = parse_item("idA~v1red~k0size~k1color~v0XL")
    assert item == {"item_id": "A", "size": "XL", "color": "red"}


def test_custom_value_starting_with_digits() -> None:
    # gtag writes v<i> right after k<i>: "v042" after "k0size" is index 0, value "42".
    assert parse_item("idA~k0size~v042~k1year~v12024") == {
        "item_id": "A",
        "size": "42",
        "year": "2024",
    }
    # Out of order: the longest digit prefix naming a k that has no value yet.
    assert parse_item("idA~v042~k0size") == {"item_id": "A", "size": "42"}


def test_indices_with_several_digits() -> None:
    tokens = [f"k{i}p{i}~v{i}x{i}" for i in range(12)]
    item = parse_item("idA~" + "~".join(tokens))
    assert item == {"item_id": "A"} | {f"p{i}": f"x{i}" for i in range(12)}


def test_custom_params_without_index_pair_in_order() -> None:
    assert parse_item("idA~kcolor~ksize~vred~vXL") == {
        "item_id": "A",
        "color": "red",
        "size": "XL",
    }


def test_unpaired_custom_params() -> None:
    # A name without a value is kept with ""; a value without a name has nothing to go under.
    assert parse_item("idA~k0color~v5red~kshape") == {"item_id": "A", "color": "", "shape": ""}


def test_codes_win_over_custom_names() -> None:
    assert parse_item("idA~k0item_id~v0B~k1item_brand~v1C") == {"item_id": "A", "item_brand": "C"}


def test_unknown_codes_are_kept_under_their_code() -> None:
    assert parse_item("idA~zzfoo~q") == {"item_id": "A", "zz": "foo"}


def test_custom_names_win_over_unknown_codes() -> None:
    assert parse_item("idA~zzfoo~k0zz~v0bar") == {"item_id": "A", "zz": "bar"}


# --- item parameter names ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pr1", "pr10", "pr0", "pr001", "pr123456789012345678901234"])
def test_item_param_names(name: str) -> None:
    assert is_item_param(name)


@pytest.mark.parametrize("name", ["pr", "pr1a", "xpr1", "pr-1", "pr\u0661", "pr1\n", "PR1", "pr 1"])
def test_not_item_param_names(name: str) -> None:
    assert not is_item_param(name)


def test_item_order_is_numeric() -> None:
    names = ["pr10", "pr2", "pr1", "pr100", "pr02", "pr" + "9" * 5000]
    assert sorted(names, key=item_order) == ["pr1", "pr02", "pr2", "pr10", "pr100", names[-1]]


# --- properties -------------------------------------------------------------------------------


@given(st.text())
def test_parse_item_never_raises(value: str) -> None:
    item = parse_item(value)
    assert item is None or item.get("item_id") or item.get("item_name")


@given(st.lists(st.sampled_from(["id", "nm", "pr", "qt", "k", "v", "k0", "v0", "~", "~~", "1"])))
def test_parse_item_never_raises_on_code_soup(parts: list[str]) -> None:
    parse_item("".join(parts))


_text_values = st.text()
_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
_custom_names = st.text(min_size=1).filter(
    lambda name: name[0] not in "0123456789" and name not in CODE_OF
)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    """GA4 items with a non-empty id or name, every field optional, custom params included."""
    item: dict[str, Any] = {}
    for key in TEXT_KEYS:
        if draw(st.booleans()):
            item[key] = draw(_text_values)
    for key in NUMERIC_KEYS:
        if draw(st.booleans()):
            item[key] = draw(_numbers)
    identity = draw(st.sampled_from(["item_id", "item_name"]))
    item[identity] = draw(st.text(min_size=1))
    custom = draw(st.dictionaries(_custom_names, _text_values, max_size=4))
    return custom | item


@given(items())
def test_item_round_trip(item: dict[str, Any]) -> None:
    assert parse_item(encode_item(item)) == item
