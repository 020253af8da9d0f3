"""The shipped reference data: cited factors, scenario definitions and priority regions load and agree."""

import numpy as np
import pandas as pd
import pytest

from soil_pipeline import reference_data
from soil_pipeline.contracts import bounded_yaml
from soil_pipeline.science.regions import NO_REGION, group_membership
from soil_pipeline.zones import climate_zone_names


def test_every_factor_has_a_value_unit_source_and_locator():
    for name, entry in reference_data.factors().items():
        assert entry["source"] and entry["locator"], name
        values = {key: item for key, item in entry.items() if isinstance(item, dict)}
        assert values, name
        for key, item in values.items():
            assert isinstance(item["value"], int | float) and item["unit"], f"{name}.{key}"


def test_zomer_implied_bulk_density():
    params = reference_data.potential_parameters()
    # 0.56 t C/ha/yr over (0.27 % x 30 cm / 20 yr) = 1.3827 g/cm3
    assert params.bulk_density_zomer_g_per_cm3 == pytest.approx(1.3827, abs=1e-4)
    assert params.content_increase_pct == {"medium": 0.27, "high": 0.54}


def test_shipped_scenarios_use_cited_recovery_curves():
    ids = reference_data.scenario_ids()
    assert ids == ["all_converted_100pct", "global_priority_15pct", "global_priority_30pct", "within_country_15pct"]
    ipcc = reference_data.factor("ipcc_2006_soc_transition", "default_transition_period_yr")
    set_aside = reference_data.factor("ipcc_2006_set_aside", "transition_period_yr")
    post_kwon = reference_data.factor("post_kwon_2000", "soc_accumulation_rate")
    for scenario_id in ids:
        scenario = reference_data.load_scenario(scenario_id)
        central = scenario.recovery
        assert (central.curve, central.factors, central.period_yr) == ("set_aside", "ipcc_2006", set_aside)
        assert central.source == "ipcc_2006_set_aside" and "Table 5.5" in central.label
        assert scenario.low.source == "post_kwon_2000" and scenario.low.rate_t_c_per_ha_per_yr == post_kwon
        eventual = scenario.eventual_recovery
        assert (eventual.curve, eventual.period_yr, eventual.source) == ("linear", ipcc, "ipcc_2006_soc_transition")
        assert "not IPCC's default" in eventual.label
        (edition,) = scenario.alternative_recovery
        assert (edition.factors, edition.source) == ("ipcc_2019", "ipcc_2019_set_aside")
    fractions = {i: reference_data.load_scenario(i).fraction for i in ids}
    assert fractions["global_priority_15pct"] == reference_data.factor(
        "strassburg_2020", "restored_fraction_of_converted_land"
    )
    assert fractions["all_converted_100pct"] == 1.0


def test_land_use_factors_per_climate_zone():
    factors = reference_data.land_use_factors(climate_zone_names())
    # IPCC 2006 Table 5.5 long-term cultivated F_LU tropical moist 0.48 (code 3), temperate dry 0.80 (code 8);
    # grazing 0.45 x cropland's loss; no zone (code 0): equal losses and no class
    assert factors.cropland_loss[[0, 3, 8]] == pytest.approx([1.0, 0.52, 0.20])
    assert factors.grazing_loss[[0, 3, 8]] == pytest.approx([1.0, 0.234, 0.09])
    assert [factors.classes[k] for k in factors.class_of_code[[1, 3, 4, 5, 8, 11]]] == [
        "tropical_montane",
        "tropical_moist_wet",
        "tropical_dry",
        "temperate_boreal_moist",
        "temperate_boreal_dry",
        "temperate_boreal_moist",
    ]
    assert factors.class_of_code[0] == len(factors.classes)
    assert (factors.cropland_loss[1:] > factors.grazing_loss[1:]).all()
    moderately = next(v for k, v in factors.grazing_alternatives.items() if "moderately degraded" in k)
    assert moderately[[3, 8]] == pytest.approx([0.03, 0.05])  # Table 6.2: the central choice before issue 22
    assert len(factors.grazing_alternatives) == 5


def test_editions_cite_their_values_and_the_2019_refinement_inherits_what_was_not_verified():
    editions = reference_data.ipcc_editions()
    assert editions["ipcc_2006"]["set_aside"]["tropical_moist_wet"] == {"value": 0.82, "error_pct": 17}
    assert editions["ipcc_2006"]["long_term_cultivated"]["tropical_dry"] == {"value": 0.58, "error_pct": 61}
    assert editions["ipcc_2019"]["long_term_cultivated"]["tropical_moist_wet"] == {"value": 0.83}
    assert editions["ipcc_2019"]["set_aside"] == editions["ipcc_2006"]["set_aside"]
    for edition in editions:
        assert "Table 5.5" in reference_data.edition_citation(edition)
    assert "2019 Refinement" in reference_data.edition_citation("ipcc_2019")


def test_priority_regions_on_natural_earth_countries():
    countries = pd.DataFrame(
        {
            "adm0_a3": ["IND", "KEN", "VNM", "PAK", "MDG", "FRA"],
            "subregion": [
                "Southern Asia",
                "Eastern Africa",
                "South-Eastern Asia",
                "Southern Asia",
                "Eastern Africa",
                "Western Europe",
            ],
        }
    )
    groups = reference_data.priority_regions()
    index = group_membership(countries["subregion"], countries["adm0_a3"], groups)
    names = [groups[i]["id"] if i != NO_REGION else None for i in index]
    assert names == ["INDIA", "EAST_AFRICA", "SOUTH_EAST_ASIA", None, "EAST_AFRICA", None]


def test_a_country_in_two_groups_is_an_error():
    groups = [{"id": "A", "adm0_a3": ["IND"]}, {"id": "B", "natural_earth_subregions": ["Southern Asia"]}]
    with pytest.raises(ValueError, match="more than one group"):
        group_membership(np.array(["Southern Asia"]), np.array(["IND"]), groups)


SHIPPED = (reference_data.SCENARIOS_DIR / "global_priority_15pct.yaml").read_text()
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SHIPPED.replace("description: >-", f"description: {BILLION_LAUGHS.splitlines()[0][3:]}\nx: >-"), "anchors"),
        (BILLION_LAUGHS, "anchors and aliases are not allowed"),
        (SHIPPED.replace("horizon_yr: 20", "horizon_yr: .inf"), "horizon_yr = inf is not a finite number"),
        (SHIPPED.replace("horizon_yr: 20", "horizon_yr: 1.0e+308"), "horizon_yr = 1e+308 is not a finite number"),
        (SHIPPED.replace("horizon_yr: 20", "horizon_yr: 1e308"), "horizon_yr must be a plain float, got '1e308'"),
        (SHIPPED.replace("horizon_yr: 20", "horizon_yr: " + "9" * 47), "horizon_yr = 9999"),
        (SHIPPED.replace("horizon_yr: 20", "horizon_yr: 5000"), "horizon_yr = 5000 is outside [1e-06, 1000]"),
        (SHIPPED.replace("fraction: 0.15", "fraction: 0"), "fraction = 0 is outside"),
        (SHIPPED.replace("fraction: 0.15", "fraction: '0.15'"), "fraction must be a plain float"),
        (SHIPPED.replace("period_yr: 20", "period_yr: [20]"), "recovery.period_yr must be a plain float"),
        (SHIPPED.replace("scope: global", "scope: {a: 1}"), "scope must be a text"),
        (SHIPPED + "\n" + "#" * (bounded_yaml.MAX_DECLARATION_BYTES + 1), "bytes, more than the"),
        (SHIPPED.replace("scope: global", "scope: nowhere"), "scope must be one of"),
    ],
)
def test_a_bad_scenario_file_is_refused_at_load_time_naming_the_file(text, expected, tmp_path, monkeypatch):
    monkeypatch.setattr(reference_data, "SCENARIOS_DIR", tmp_path)
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(reference_data.DeclarationError) as error:
        reference_data.load_scenario("bad")
    assert str(error.value).startswith(f"{tmp_path / 'bad.yaml'}: ")
    assert expected in str(error.value)


def test_the_shipped_declaration_files_pass_the_bounded_loader():
    for scenario_id in reference_data.scenario_ids():
        assert reference_data.load_scenario(scenario_id).horizon_yr == 20
    assert reference_data.priority_regions() and reference_data.monte_carlo_parameters()
