"""The compiled path's answer objects (graphql_schema.compiled_objects): whatever the number of keys, the dicts
built are those `dict(zip(keys, row))` builds, keys in order; columns of unequal lengths are an error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphql_schema.compiled_objects import objects

KEYS = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=12, unique=True)


@given(keys=KEYS, rows=st.integers(min_value=0, max_value=20), data=st.data())
def test_objects_are_the_rows_zipped_with_their_keys_in_order(keys: list[str], rows: int, data: Any) -> None:
    columns = [data.draw(st.lists(st.integers() | st.none(), min_size=rows, max_size=rows)) for _ in keys]
    built = objects(keys, columns)
    assert built == [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    assert all(list(answer) == keys for answer in built)


def test_columns_of_unequal_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="shorter"):
        objects(["a", "b"], [[1, 2], [1]])
