"""The figures of docs/field_validation.md, "How the figures move from one drop to the next": the embedded Africa
Soil Profiles survey split by sampling date into three monthly drops, run one after the other through the main job
(as the `new_field_drops` sensor would launch them), then the last drop delivered again unchanged.

    PYTHONPATH=. python docs/field_validation_drops.py [--work DIR]

Prints, after each run, the distinct sites, the global validation row of all drops and of the drop itself, the
field-calibrated regional stocks and the potential's 4p1000 target intervals of those regions (markdown).
"""

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from soil_pipeline.assets.field_validation import with_interval
from soil_pipeline.publishing.store import VersionedParquetStore
from soil_pipeline.resources import InputDatasets
from soil_pipeline.runner import MAIN_JOB, run_job
from soil_pipeline_tests.drops import copy_drop, split_by_sampling_date

DROPS = {"1979-12": "1980-01-01", "1999-12": "2000-01-01", "2012-10": None}
REDELIVERED = ("2012-10", "2013-01")


def figures(root: Path, drop: str) -> None:
    store = VersionedParquetStore(root)
    history = store.read("field_site_history")
    validation = store.read("map_validation")
    regional = store.read("regional_soc_stocks")
    potential = store.read("regional_sequestration_potential")
    world = regional[regional["region_type"] == "global"].iloc[0]
    print(f"\n### after drop {drop}\n")
    print(
        f"deliveries {len(history):,}; distinct sites {int(history['representative'].sum()):,}; with a 0-30 cm stock "
        f"(regional_soc_stocks n_field_sites, global) {int(world['n_field_sites']):,}; deliveries by kind "
        f"{history['delivery'].value_counts().sort_index().to_dict()}\n"
    )
    rows = validation[(validation["region_type"] == "global") & validation["scope"].isin(["all drops", drop])]
    table = pd.DataFrame(
        {
            "scope": rows["scope"],
            "n": rows["n_sites"],
            "bias t C/ha": [with_interval(r, "bias_t_c_per_ha", 2) for _, r in rows.iterrows()],
            "RMSE t C/ha": [with_interval(r, "rmse_t_c_per_ha", 1) for _, r in rows.iterrows()],
            "MEC": [with_interval(r, "mec", 3) for _, r in rows.iterrows()],
            "Lin's CCC": [with_interval(r, "lin_ccc", 3) for _, r in rows.iterrows()],
            "median map/field": [with_interval(r, "median_map_to_field_ratio", 3) for _, r in rows.iterrows()],
            "area within 25 km %": rows["area_near_a_site_pct"].round(2),
            "WHRC 90 % covers %": rows["stated_error_coverage_90_pct"].round(1),
        }
    )
    print(table.to_markdown(index=False))
    calibrated = regional[regional["soc_stock_2010_estimate"].str.startswith("field-calibrated")]
    merged = calibrated.merge(potential, on=["region_type", "region_id"], suffixes=("", "_potential"))
    print()
    print(
        pd.DataFrame(
            {
                "region": merged["region_type"] + " " + merged["region_id"],
                "sites": merged["n_field_sites"],
                "map Pg C": merged["soc_stock_2010_pg_c"].round(3),
                "calibrated Pg C": merged["field_calibrated_soc_stock_2010_pg_c"].round(3).astype(str)
                + " +- "
                + merged["field_calibrated_soc_stock_2010_se_pg_c"].round(3).astype(str),
                "stock error %": merged["soc_stock_2010_field_error_pct"].round(1),
                "4p1000 target Tg C/yr [p05, p95]": [
                    f"{r.target_4p1000_tg_c_per_yr:.2f} [{r.target_4p1000_tg_c_per_yr_p05:.2f}, "
                    f"{r.target_4p1000_tg_c_per_yr_p95:.2f}]"
                    for r in merged.itertuples()
                ],
            }
        ).to_markdown(index=False)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="field_drops_"))
    landing, root = work / "landing", work / "published"
    counts = split_by_sampling_date(landing, DROPS)
    print(f"sites per drop: {counts}")
    inputs = InputDatasets(landing_dir=str(landing))
    for drop in [*DROPS, None]:
        if drop is None:
            copy_drop(landing, *REDELIVERED)
            drop = REDELIVERED[1]
        outcome = run_job(root, MAIN_JOB, partition=drop, inputs=inputs)
        if not outcome.success:
            raise SystemExit(f"run of {drop} failed: {outcome.failures()}")
        figures(root, drop)


if __name__ == "__main__":
    main()
