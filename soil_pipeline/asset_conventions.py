"""What every asset carries besides its computation, in one place: owners, kinds (the UI's badges), tags and, where
the monthly cadence makes it meaningful, a freshness policy. Applied to the assets when the definitions are
assembled (`apply`); the raw-input source assets carry their kinds and tags in their own definitions
(`SOURCE_TAGS`), since Dagster's source assets have no owners."""

from datetime import timedelta

import dagster as dg

OWNERS = ["team:soil-carbon"]
TAGS = {"domain": "soil_carbon"}
# Kinds by asset group: what the asset is stored as, and what computes it.
KINDS = {
    "field_samples": {"parquet", "pandas", "duckdb"},
    "field_validation": {"parquet", "pandas", "scipy"},
    "regions": {"parquet", "geopandas"},
    "global_grids": {"geotiff", "rasterio"},
    "regional": {"parquet", "pandas"},
    "potential": {"parquet", "numpy"},
    "scenarios": {"parquet", "numpy"},
}
# Field drops arrive monthly, so everything that summarises them is expected to be refreshed within about a month:
# warn after 5 weeks without a new materialization, fail after two months (the monthly schedule, or the sensor on
# the landing folder, refreshes them).
MONTHLY = dg.FreshnessPolicy.time_window(warn_window=timedelta(days=35), fail_window=timedelta(days=62))
FRESHNESS = {"field_validation": MONTHLY, "regional": MONTHLY, "potential": MONTHLY, "scenarios": MONTHLY}
# The raw inputs: files read as they are (kinds are tags under `dagster/kind/`).
SOURCE_TAGS = {**TAGS, "dagster/kind/file": ""}


def _conventions(spec: dg.AssetSpec) -> dg.AssetSpec:
    spec = spec.merge_attributes(owners=OWNERS, tags=TAGS, kinds=KINDS.get(spec.group_name, set()))
    if spec.group_name in FRESHNESS and spec.freshness_policy is None:
        spec = spec.replace_attributes(freshness_policy=FRESHNESS[spec.group_name])
    return spec


def apply(assets: list) -> list:
    """The assets with the conventions (source assets as they are)."""
    definitions = [asset for asset in assets if isinstance(asset, dg.AssetsDefinition)]
    others = [asset for asset in assets if not isinstance(asset, dg.AssetsDefinition)]
    return [*dg.map_asset_specs(_conventions, definitions), *others]
