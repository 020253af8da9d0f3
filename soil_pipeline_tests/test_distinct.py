"""Cells with the same inputs (science/distinct.py): found bit for bit."""

import numpy as np

from soil_pipeline.science.distinct import distinct_cells


def test_cells_are_grouped_by_their_values_bit_for_bit():
    monthly = np.array([[1.0, 2.0, 1.0, 1.0, 2.0, 0.0], [5.0, 6.0, 5.0, 7.0, 6.0, -0.0]])
    clay = np.array([20.0, 30.0, 20.0, 20.0, 30.0, 20.0])
    first, sets = distinct_cells([monthly, clay])
    # cell 3 differs in its second month, cell 5 in the sign of a zero
    assert sorted(first.tolist()) == [0, 1, 3, 5]
    assert (first[sets] == [0, 1, 0, 3, 1, 5]).all()


def test_nothing_shared_or_everything_shared_gives_no_sets():
    assert distinct_cells([np.arange(4.0)]) == (None, None)
    # one set would be computed on a one-cell array, which numpy sums in another order
    assert distinct_cells([np.full((12, 3), 4.0), np.full(3, 20.0)]) == (None, None)
