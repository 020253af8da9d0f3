"""Countries on the grid: cell centres inside polygons, the nearest-country fallback for land cells, the remainder."""

import numpy as np
import shapely
from affine import Affine
from rasterio.windows import Window

from soil_pipeline.science.grid import GridSpec, window_grid
from soil_pipeline.science.regions import (
    NO_REGION,
    PointAssigner,
    WindowRasterizer,
    fill_nearest,
    fill_nearest_in_window,
    rasterize_regions,
)

# 1-degree cells, columns 0..5 (lon 0..6), rows 0..1 (lat 2..0); centres at lon x.5, lat 1.5 and 0.5.
GRID = GridSpec(6, 2, Affine(1, 0, 0, 0, -1, 2))
# Country 0 covers lon 0-2.2, country 1 lon 3.4-4: the centres at lon 2.5, 3.5 (inside 1) and 4.5, 5.5 differ.
POLYGONS = [shapely.box(0, 0, 2.2, 2), shapely.box(3.4, 0, 4, 2)]


def test_cell_centres_outside_every_polygon_take_the_nearest_within_the_distance():
    inside = rasterize_regions(POLYGONS, GRID)
    np.testing.assert_array_equal(inside, [[0, 0, -1, 1, -1, -1], [0, 0, -1, 1, -1, -1]])
    land = np.ones(GRID.shape, dtype=bool)
    land[1, 2] = False  # sea: stays without a country even though a polygon is near
    filled, nearest = fill_nearest(inside, land, POLYGONS, GRID, max_distance_deg=0.6)
    # lon 2.5: 0.3 from country 0, 0.9 from country 1 -> 0; lon 4.5: 0.5 from country 1 -> 1; lon 5.5: 1.5 away -> none
    np.testing.assert_array_equal(filled, [[0, 0, 0, 1, 1, -1], [0, 0, -1, 1, 1, -1]])
    np.testing.assert_array_equal(nearest, [[0, 0, 1, 0, 1, 0], [0, 0, 0, 0, 1, 0]])
    assert (inside == [[0, 0, -1, 1, -1, -1]] * 2).all()  # the input is not modified


def test_points_asked_about_again_get_what_they_got_the_first_time():
    """The assigner remembers what it assigned: a second batch mixing old and new points is assigned as a fresh
    assigner assigns it, per distance."""
    assigner = PointAssigner(POLYGONS)
    lon, lat = np.array([1.0, 2.5, 3.7, 4.5, 5.5, -40.0]), np.array([1.0, 1.0, 0.5, 1.0, 1.0, 1.0])
    index, method = assigner(lon, lat, 0.6)
    np.testing.assert_array_equal(index, [0, 0, 1, 1, NO_REGION, NO_REGION])
    assert method.tolist() == ["within", "nearest", "within", "nearest", "none", "none"]
    again_lon, again_lat = np.r_[lon[::-1], 2.0, 4.5], np.r_[lat[::-1], 0.5, 1.0]
    for distance in (0.6, 0.1):
        expected = PointAssigner(POLYGONS)(again_lon, again_lat, distance)
        found = assigner(again_lon, again_lat, distance)
        np.testing.assert_array_equal(found[0], expected[0])
        assert found[1].tolist() == expected[1].tolist()
    assert assigner(again_lon, again_lat, 0.1)[0][-1] == NO_REGION  # 0.5 from country 1: not within 0.1


def test_an_assigner_that_remembers_nothing_assigns_as_one_that_does():
    lon, lat = np.linspace(-1, 7, 40), np.linspace(-0.5, 2.5, 40)
    assigned = PointAssigner(POLYGONS)(lon, lat, 0.6)
    forgetful = PointAssigner(POLYGONS, remembered_points=0)
    for _ in range(2):
        np.testing.assert_array_equal(forgetful(lon, lat, 0.6)[0], assigned[0])


def test_points_looked_up_on_the_grid_get_what_the_polygon_test_gives():
    """Points deep inside one polygon are placed by the lookup grid; near a boundary, inside an enclave smaller than
    a grid cell, or where two polygons overlap (the tree's order decides) they are tested: both as the test alone."""
    polygons = [
        shapely.box(0, 0, 10, 10),
        shapely.box(3.001, 3.001, 3.02, 3.02),  # an enclave inside polygon 0, smaller than a lookup cell
        shapely.box(6, 6, 12, 12),  # overlaps polygon 0
        shapely.Polygon([(-5, -5), (-1, -5), (-3, -1)]),
    ]
    x, y = np.meshgrid(np.linspace(-6, 13, 300), np.linspace(-6, 13, 300))
    x, y = np.r_[x.ravel(), 3.01, 3.005], np.r_[y.ravel(), 3.01, 3.015]
    assigner = PointAssigner(polygons)
    index, method = assigner(x, y, 0.3)
    expected = PointAssigner(polygons)._test(x, y, 0.3)
    np.testing.assert_array_equal(index, expected[0])
    assert method.tolist() == PointAssigner.METHODS[expected[1]].tolist()
    assert index[-2:].tolist() == [1, 1]
    looked_up = assigner._lookup(x, y) != NO_REGION
    assert 0.2 < looked_up.mean() < 0.4 and set(index[looked_up]) == {0, 2, 3}


def test_only_land_cells_are_filled():
    inside = rasterize_regions(POLYGONS, GRID)
    filled, nearest = fill_nearest(inside, np.zeros(GRID.shape, dtype=bool), POLYGONS, GRID, max_distance_deg=5.0)
    np.testing.assert_array_equal(filled, inside)
    assert not nearest.any()
    assert (filled == NO_REGION).sum() == 6


def test_filling_window_by_window_equals_filling_the_whole_grid():
    """Each window measures only the boundaries within reach (polygons cut to the window plus the distance), which
    must give every cell the country the whole-grid fill gives it; an L-shaped polygon meets windows by its bounding
    box only."""
    grid = GridSpec(80, 40, Affine(0.1, 0, 0, 0, -0.1, 4))
    polygons = [
        shapely.box(0.2, 0.2, 2.25, 1.9),
        shapely.box(3.6, 1.0, 3.9, 3.0),  # 0.45 deg east of the cells at the window edge lon 3.2
        shapely.Polygon([(4, 0), (8, 0), (8, 0.3), (4.3, 0.3), (4.3, 4), (4, 4)]),
    ]
    land = np.random.default_rng(7).random(grid.shape) < 0.7
    whole, whole_nearest = fill_nearest(rasterize_regions(polygons, grid), land, polygons, grid, 0.5)
    rasterizer = WindowRasterizer(polygons)
    for row in range(0, 40, 16):
        for col in range(0, 80, 16):
            window = Window(col, row, min(16, 80 - col), min(16, 40 - row))
            inside = rasterizer(window_grid(grid, window))
            filled, nearest = fill_nearest_in_window(inside, land[window.toslices()], rasterizer, grid, window, 0.5)
            np.testing.assert_array_equal(filled, whole[window.toslices()])
            np.testing.assert_array_equal(nearest, whole_nearest[window.toslices()])
    assert whole_nearest.sum() > 100 and (whole[land] == NO_REGION).sum() > 100  # both kinds of cells are there
