"""MultiVectors: packing, zero-copy views, slicing/selection and offset validation."""

from __future__ import annotations

import numpy as np
import pytest

from edgecolbert import EdgeColbertError, InvalidInputError, MultiVectors


def _arrays(lengths, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, dim)).astype(np.float32) for n in lengths]


@pytest.fixture
def packed():
    arrays = _arrays([3, 1, 0, 5, 2])
    return arrays, MultiVectors.from_arrays(arrays)


def test_from_arrays_packs_end_to_end(packed):
    arrays, mv = packed
    assert mv.data.shape == (11, 4)
    assert mv.data.dtype == np.float32
    np.testing.assert_array_equal(mv.offsets, [0, 3, 4, 4, 9, 11])
    assert mv.offsets.dtype == np.int64
    np.testing.assert_array_equal(mv.data, np.concatenate(arrays))
    assert len(mv) == 5
    assert mv.dim == 4
    np.testing.assert_array_equal(mv.lengths, [3, 1, 0, 5, 2])


def test_from_arrays_copies_its_inputs(packed):
    arrays, mv = packed
    assert not any(np.shares_memory(mv.data, array) for array in arrays)
    arrays[0][0, 0] = 1234.0
    assert mv[0][0, 0] != 1234.0


def test_from_arrays_converts_to_float32():
    mv = MultiVectors.from_arrays([np.ones((2, 3), dtype=np.float64), np.ones((1, 3), dtype=np.float16)])
    assert mv.data.dtype == np.float32
    np.testing.assert_array_equal(mv.data, np.ones((3, 3)))


def test_indexing_returns_zero_copy_views(packed):
    arrays, mv = packed
    for i, expected in enumerate(arrays):
        view = mv[i]
        assert view.shape == expected.shape
        np.testing.assert_array_equal(view, expected)
        if view.size:
            assert np.shares_memory(view, mv.data)
    # Writing through a view is visible in the packed array: it really is a view.
    mv[3][0, 0] = 99.0
    assert mv.data[4, 0] == 99.0


def test_negative_index_and_out_of_range(packed):
    arrays, mv = packed
    np.testing.assert_array_equal(mv[-1], arrays[-1])
    np.testing.assert_array_equal(mv[-5], arrays[0])
    with pytest.raises(IndexError):
        mv[5]
    with pytest.raises(IndexError):
        mv[-6]


def test_iteration_order_and_views(packed):
    arrays, mv = packed
    items = list(mv)
    assert len(items) == len(arrays)
    for got, expected in zip(items, arrays):
        np.testing.assert_array_equal(got, expected)
        if got.size:
            assert np.shares_memory(got, mv.data)
    assert [item.shape[0] for item in mv] == [3, 1, 0, 5, 2]


def test_zero_length_member(packed):
    _, mv = packed
    empty = mv[2]
    assert empty.shape == (0, 4)
    assert mv.lengths[2] == 0


def test_slicing_returns_multivectors(packed):
    arrays, mv = packed
    part = mv[1:4]
    assert isinstance(part, MultiVectors)
    assert len(part) == 3
    np.testing.assert_array_equal(part.lengths, [1, 0, 5])
    for got, expected in zip(part, arrays[1:4]):
        np.testing.assert_array_equal(got, expected)
    reversed_ = mv[::-1]
    assert isinstance(reversed_, MultiVectors)
    np.testing.assert_array_equal(reversed_.lengths, [2, 5, 0, 1, 3])
    np.testing.assert_array_equal(reversed_[0], arrays[-1])
    stepped = mv[::2]
    np.testing.assert_array_equal(stepped.lengths, [3, 0, 2])
    empty = mv[3:3]
    assert isinstance(empty, MultiVectors) and len(empty) == 0 and empty.dim == 4


def test_select_keeps_requested_order(packed):
    arrays, mv = packed
    chosen = mv.select([4, 0, 3, 0])
    assert isinstance(chosen, MultiVectors)
    np.testing.assert_array_equal(chosen.lengths, [2, 3, 5, 3])
    for got, index in zip(chosen, [4, 0, 3, 0]):
        np.testing.assert_array_equal(got, arrays[index])
    from_numpy = mv.select(np.array([1, 2]))
    np.testing.assert_array_equal(from_numpy.lengths, [1, 0])
    nothing = mv.select([])
    assert len(nothing) == 0 and nothing.dim == 4 and nothing.data.shape == (0, 4)


def test_empty_collection():
    mv = MultiVectors.from_arrays([])
    assert len(mv) == 0
    assert list(mv) == []
    assert mv.data.shape[0] == 0
    np.testing.assert_array_equal(mv.offsets, [0])
    assert mv.lengths.shape == (0,)
    with pytest.raises(IndexError):
        mv[0]


def test_empty_collection_keeps_given_dim():
    mv = MultiVectors.from_arrays([], dim=7)
    assert mv.dim == 7
    assert mv.data.shape == (0, 7)


def test_all_members_empty():
    mv = MultiVectors.from_arrays([np.zeros((0, 3)), np.zeros((0, 3))])
    assert len(mv) == 2 and mv.dim == 3
    np.testing.assert_array_equal(mv.lengths, [0, 0])
    assert [item.shape for item in mv] == [(0, 3), (0, 3)]


def test_constructor_accepts_valid_offsets():
    data = np.arange(12, dtype=np.float32).reshape(6, 2)
    mv = MultiVectors(data, np.array([0, 2, 2, 6]))
    assert len(mv) == 3
    assert mv.data is data  # no copy for an already-suitable array
    np.testing.assert_array_equal(mv[2], data[2:])


def test_repr_mentions_sizes(packed):
    _, mv = packed
    assert repr(mv) == "MultiVectors(texts=5, vectors=11, dim=4)"


# --------------------------------------------------------------------------- errors


def test_invalid_input_error_is_value_error():
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(InvalidInputError, EdgeColbertError)


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros((2, 3, 4)), np.float32(1.0)])
def test_from_arrays_rejects_non_2d(bad):
    with pytest.raises(InvalidInputError, match="2-D"):
        MultiVectors.from_arrays([np.zeros((2, 4)), bad])


def test_from_arrays_rejects_1d_as_value_error():
    with pytest.raises(ValueError, match="Array 0"):
        MultiVectors.from_arrays([np.zeros(4)])


def test_from_arrays_rejects_mismatched_dims():
    with pytest.raises(InvalidInputError, match="dimension"):
        MultiVectors.from_arrays([np.zeros((2, 4)), np.zeros((3, 5))])


def test_from_arrays_rejects_dim_disagreeing_with_arrays():
    with pytest.raises(InvalidInputError, match="dimension"):
        MultiVectors.from_arrays([np.zeros((2, 4))], dim=8)


def test_constructor_rejects_1d_data():
    with pytest.raises(InvalidInputError, match="2-D"):
        MultiVectors(np.zeros(6, dtype=np.float32), np.array([0, 6]))


@pytest.mark.parametrize(
    "offsets",
    [
        pytest.param([1, 3, 6], id="not-starting-at-0"),
        pytest.param([0, 3, 5], id="ending-short-of-rows"),
        pytest.param([0, 3, 7], id="ending-past-rows"),
        pytest.param([], id="empty"),
        pytest.param([[0, 6]], id="2-D"),
    ],
)
def test_constructor_rejects_offsets_not_spanning_rows(offsets):
    with pytest.raises(InvalidInputError, match="offsets"):
        MultiVectors(np.zeros((6, 2), dtype=np.float32), np.array(offsets, dtype=np.int64))


def test_constructor_rejects_decreasing_offsets():
    with pytest.raises(InvalidInputError, match="non-decreasing"):
        MultiVectors(np.zeros((6, 2), dtype=np.float32), np.array([0, 4, 2, 6]))
