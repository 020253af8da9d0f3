"""Contract rule kinds, each defined once: the keys a contract gives it and its implementation for every consumer.

A table contract states rules in two places. Column rules follow from a column's ODCS fields (`COLUMN_KINDS`):
`required`, `logicalTypeOptions` minimum/maximum, an `invalidValues` quality entry, `unique`, a foreignKey
relationship. Dataset rules are the table's quality entries (`DATASET_KINDS`): an ODCS library metric (rowCount,
duplicateValues, nullValues in percent) or a `type: custom, engine: soil_pipeline` entry whose `implementation`
names the kind (`rule`) and gives its keys. contracts.model refuses any other kind, metric or key when a contract
loads, so a misspelt rule cannot vanish.

A kind gives the rows breaking it, computed on whole columns at once (`broken`, `broken_rows`: what
contracts.validate runs on every chunk), its part of the pandera schema (`pandera`: the same verdicts, for a table
whose columns are not of the contract's types, and the peer of the ingest benchmark), its Great Expectations
expectation (`gx`; None where GX cannot express it), and, for a whole-table kind, what it needs of the table
(`tally`) gathered over one frame or chunk by chunk (contracts.stream), and its verdict (`holds`). Pandera and GX
are passed in (`pa`, `gxe`): loading a contract imports neither. Kinds on points (`PointKind`) are judged by
contracts.validate against the land mask and regions it is given; collapse_identical and max_rejected_share are
applied there too (`collapse_identical`, `share_gate`), to a whole table or one chunk of it alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

if TYPE_CHECKING:
    from soil_pipeline.contracts.model import ColumnSpec, DatasetRule

# Keys of an ODCS quality entry that describe it without changing what is checked.
DESCRIPTIVE_QUALITY_KEYS = (
    "id",
    "name",
    "description",
    "severity",
    "dimension",
    "businessImpact",
    "tags",
    "authoritativeDefinitions",
    "method",
    "schedule",
    "scheduler",
)
CUSTOM_ENGINE = "soil_pipeline"
# Column metadata read from customProperties (plausibleMaximum: above it a value is kept but flagged downstream).
COLUMN_PROPERTIES = ("unit", "rangeSource", "derived", "plausibleMaximum")


def rule_label(rule: str, column: str, detail: str) -> str:
    """The text pandera reports as the failed check: 'rule|column|detail' (split again by `parse_label`)."""
    return f"{rule}|{column}|{detail}"


def parse_label(label: str) -> tuple[str, str, str]:
    rule, column, detail = label.split("|", 2)
    return rule, column, detail


class ColumnKind:
    """A rule a column's ODCS fields state; `name` is the rule its reject rows name."""

    name = ""
    # pandera's own check name when the rule is a pandera.Column option rather than a check of ours.
    pandera_builtin: str | None = None

    def applies(self, column: ColumnSpec) -> bool:
        raise NotImplementedError

    def detail(self, column: ColumnSpec) -> str:
        raise NotImplementedError

    def label(self, column: ColumnSpec) -> str:
        return rule_label(self.name, column.name, self.detail(column))

    def broken(self, column: ColumnSpec, values: pd.Series, foreign_values: dict) -> pd.Series | None:
        """The rows of `values` (the column, typed) breaking the rule, as pandera judges them (a check ignores
        missing values); None when the rule is not checked (e.g. a foreign key without its values)."""
        raise NotImplementedError

    def pandera(self, pa, column: ColumnSpec, foreign_values: dict) -> dict:
        """pandera.Column options (`checks` lists are joined)."""
        raise NotImplementedError

    def gx(self, gxe, column: ColumnSpec, orphans: dict):
        raise NotImplementedError


class Required(ColumnKind):
    """ODCS `required: true`."""

    name, pandera_builtin = "required", "not_nullable"

    def applies(self, column):
        return column.required

    def detail(self, column):
        return f"{column.name} is required"

    def broken(self, column, values, foreign_values):
        return values.isna()

    def pandera(self, pa, column, foreign_values):
        return {"nullable": False}

    def gx(self, gxe, column, orphans):
        return gxe.ExpectColumnValuesToNotBeNull(column=column.name)


class Range(ColumnKind):
    """ODCS `logicalTypeOptions: {minimum, maximum}` (either or both)."""

    name = "range"
    options = ("minimum", "maximum")

    def applies(self, column):
        return column.minimum is not None or column.maximum is not None

    def detail(self, column):
        return column.range_text()

    def broken(self, column, values, foreign_values):
        # numpy numbers compared without pandas (NaN compares false, as there)
        if isinstance(values.dtype, np.dtype) and values.dtype.kind in "fiu":
            numbers = values.to_numpy()
            within = np.ones(len(numbers), dtype=bool)
            if column.minimum is not None:
                within &= numbers >= column.minimum
            if column.maximum is not None:
                within &= numbers <= column.maximum
            return pd.Series(~within & ~np.isnan(numbers) if values.dtype.kind == "f" else ~within, index=values.index)
        within = values.notna()
        if column.minimum is not None:
            within &= values >= column.minimum
        if column.maximum is not None:
            within &= values <= column.maximum
        return values.notna() & ~within

    def pandera(self, pa, column, foreign_values):
        label = self.label(column)
        if column.maximum is None:
            return {"checks": [pa.Check.ge(column.minimum, error=label)]}
        if column.minimum is None:
            return {"checks": [pa.Check.le(column.maximum, error=label)]}
        return {"checks": [pa.Check.in_range(column.minimum, column.maximum, error=label)]}

    def gx(self, gxe, column, orphans):
        return gxe.ExpectColumnValuesToBeBetween(column=column.name, min_value=column.minimum, max_value=column.maximum)


class AllowedValues(ColumnKind):
    """An ODCS `invalidValues` quality entry on the column: `arguments: {validValues: [...]}`, `mustBe: 0`."""

    name = "allowed_values"
    metric, arguments = "invalidValues", ("validValues",)

    def applies(self, column):
        return bool(column.valid_values)

    def detail(self, column):
        return f"{column.name} must be one of {list(column.valid_values)}"

    def broken(self, column, values, foreign_values):
        return values.notna() & ~values.isin(column.valid_values)

    def pandera(self, pa, column, foreign_values):
        return {"checks": [pa.Check.isin(column.valid_values, error=self.label(column))]}

    def gx(self, gxe, column, orphans):
        return gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=list(column.valid_values))


class Unique(ColumnKind):
    """ODCS `unique: true`: every copy of a repeated value is rejected."""

    name, pandera_builtin = "unique", "field_uniqueness"

    def applies(self, column):
        return column.unique

    def detail(self, column):
        return f"{column.name} must be unique"

    def broken(self, column, values, foreign_values):
        # every copy; a missing value is no copy
        return pd.Series(repeated_rows([values]), index=values.index) & values.notna()

    def pandera(self, pa, column, foreign_values):
        return {"unique": True}

    def gx(self, gxe, column, orphans):
        return gxe.ExpectColumnValuesToBeUnique(column=column.name)


class ForeignKey(ColumnKind):
    """An ODCS foreignKey relationship (`to: table.column`), checked when the referenced values are given: pandera
    gets the values present in the target, GX the table's values absent from it (`orphans`)."""

    name = "foreign_key"

    def applies(self, column):
        return column.foreign_key is not None

    def detail(self, column):
        return f"{column.name} must exist in {column.foreign_key}"

    def broken(self, column, values, foreign_values):
        if column.foreign_key not in foreign_values:
            return None
        return values.notna() & ~in_set(values, allowed_set(foreign_values[column.foreign_key]))

    def pandera(self, pa, column, foreign_values):
        if column.foreign_key not in foreign_values:
            return {}
        return {"checks": [in_set_check(pa, foreign_values[column.foreign_key], self.label(column))]}

    def gx(self, gxe, column, orphans):
        if column.foreign_key not in orphans:
            return None
        # The values absent from the referenced table, not the (large) set of those present: the same verdict on
        # the same rows, and GX copies an expectation's arguments at every step of a validation.
        missing = sorted(orphans[column.foreign_key])
        return gxe.ExpectColumnValuesToNotBeInSet(
            column=column.name,
            value_set=missing,
            description=f"values of {column.name} must exist in {column.foreign_key}: none of the "
            f"{len(missing)} value(s) of this table that do not may appear",
        )


def repeated_rows(columns: list[pd.Series]) -> np.ndarray:
    """Whether each row's values in `columns` (aligned) occur in another row too, missing equal to missing (as
    `DataFrame.duplicated(keep=False)`), narrowed one column at a time: each column is compared only over the rows
    still repeated in the columns before it. Rows are grouped by the codes of `pd.factorize`, counted by bincount."""
    n = len(columns[0]) if columns else 0
    rows, groups = np.arange(n), None
    for values in columns:
        codes, uniques = pd.factorize(values if len(rows) == n else values.iloc[rows], use_na_sentinel=False)
        groups = codes if groups is None else groups * len(uniques) + codes
        if len(groups) and groups.max() >= 4 * len(groups):  # keep the counts' array about as long as the rows
            groups = pd.factorize(groups)[0]
        repeated = np.bincount(groups)[groups] > 1
        rows, groups = rows[repeated], groups[repeated]
        if not len(rows):
            break
    found = np.zeros(n, dtype=bool)
    found[rows] = True
    return found


def allowed_set(values) -> pyarrow.Array:
    """The allowed values of a membership rule as pyarrow text: a pyarrow array is kept as it is (e.g. millions of
    site ids), any other iterable is converted."""
    if isinstance(values, pyarrow.Array | pyarrow.ChunkedArray):
        return values.cast(pyarrow.string())
    return pyarrow.array(sorted(str(v) for v in values), type=pyarrow.string())


def in_set(series: pd.Series, allowed: pyarrow.Array) -> pd.Series:
    """Membership of each value's text by pyarrow hash lookup (pandas' isin on arrow strings converts every allowed
    value one by one); missing is not a member."""
    found = pc.is_in(pyarrow.array(series.astype("str"), from_pandas=True), value_set=allowed)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=series.index).fillna(False).astype(bool)


def in_set_check(pa, values, label: str):
    """`in_set` as a pandera check."""
    allowed = allowed_set(values)
    return pa.Check(lambda series: in_set(series, allowed), error=label)


# In the order their checks and expectations are built.
COLUMN_KINDS = (Required(), Range(), AllowedValues(), Unique(), ForeignKey())


class MedianValues:
    """The non-missing values of a column, added frame by frame, for its exact median in at most 8 bytes per value:
    as distinct values with their counts while that is smaller (measured values repeat: 0.01 g/kg steps), else the
    values themselves."""

    def __init__(self):
        self.distinct, self.counts, self.parts, self.n = np.zeros(0), np.zeros(0, dtype="int64"), [], 0

    def add(self, values: np.ndarray) -> None:
        self.n += len(values)
        if self.counts is None:
            self.parts.append(values)
            return
        values, counts = np.unique(values, return_counts=True)
        distinct, where = np.unique(np.concatenate([self.distinct, values]), return_inverse=True)
        counts = np.bincount(where, weights=np.concatenate([self.counts, counts]), minlength=len(distinct))
        self.distinct, self.counts = distinct, counts.astype("int64")
        if 2 * len(self.distinct) > self.n:  # a value and its count take more room than the values
            self.parts, self.distinct, self.counts = [np.repeat(self.distinct, self.counts)], None, None

    def median(self) -> float:
        """As `np.median` of all the values (NaN when there are none)."""
        if self.counts is None:
            return float(np.median(np.concatenate(self.parts), overwrite_input=True))
        if not self.n:
            return float("nan")
        ends = np.cumsum(self.counts)  # the position after each distinct value's last copy, in sorted order
        middle = self.distinct[np.searchsorted(ends, [(self.n - 1) // 2, self.n // 2], side="right")]
        return float(np.mean(middle)) if self.n % 2 == 0 else float(middle[1])


class Tally:
    """What a whole-table rule needs of its column, added frame by frame: the non-missing count, and the
    non-missing values (`MedianValues`) when a median is asked for."""

    def __init__(self, column: str | None, keep_values: bool = False):
        self.column, self.non_null, self.values = column, 0, MedianValues() if keep_values else None

    def add(self, frame: pd.DataFrame) -> None:
        if self.column is None:
            return
        values = frame[self.column]
        self.non_null += int(values.notna().sum())
        if self.values is not None:
            self.values.add(values.dropna().to_numpy(dtype="float64"))

    def median(self) -> float:
        return self.values.median()


class DatasetKind:
    """A rule on the whole table, from a quality entry; the rule's `id` is what its rejects and errors name."""

    name = ""
    keys: tuple[str, ...] = ()  # what `implementation` (or the library metric) must give
    column_keys: tuple[str, ...] = ()  # keys naming a column of the contract (a list of them for `columns`)
    whole_table = False  # judged on the whole table: over all chunks of a table validated in parts
    once = False  # at most one such rule per contract
    on_points = False  # judged by contracts.validate on coordinates (`PointKind`)
    # The ODCS library metric stating this kind, the keys it reads from the quality entry and from its `arguments`.
    metric: str | None = None
    metric_keys: tuple[str, ...] = ()
    metric_arguments: tuple[str, ...] = ()

    def detail(self, rule: DatasetRule) -> tuple[str, str]:
        """(column, statement) of the rule, as its rejects and errors report it."""
        return "*", ""

    def label(self, rule: DatasetRule) -> str:
        return rule_label(rule.id, *self.detail(rule))

    def broken_rows(self, rule: DatasetRule, frame: pd.DataFrame) -> pd.Series | None:
        """The rows of `frame` (typed) a row-level kind rejects, as pandera judges them; None for other kinds."""
        return None

    def pandera(self, pa, rule: DatasetRule) -> dict:
        """pandera.DataFrameSchema options (`checks` lists are joined): a whole-table kind's tally over the frame."""
        if not self.whole_table:
            return {}

        def holds(frame: pd.DataFrame) -> bool:
            tally = self.tally(rule)
            tally.add(frame)
            return self.holds(rule, tally, len(frame))

        return {"checks": [pa.Check(holds, error=self.label(rule))]}

    def tally(self, rule: DatasetRule) -> Tally:
        return Tally(rule.params.get("column"))

    def holds(self, rule: DatasetRule, tally: Tally, n_rows: int) -> bool:
        raise NotImplementedError

    def gx(self, gxe, rule: DatasetRule):
        return None

    def from_metric(self, quality: dict) -> dict:
        """The rule's keys from its ODCS library-metric quality entry (keys already checked by contracts.model);
        ValueError for a value this kind cannot honour."""
        raise NotImplementedError


class RowCount(DatasetKind):
    name, keys, whole_table = "row_count", ("minimum", "maximum"), True
    metric, metric_keys = "rowCount", ("mustBeBetween",)

    def detail(self, rule):
        return "*", f"row count must be within [{rule.params['minimum']}, {rule.params['maximum']}]"

    def holds(self, rule, tally, n_rows):
        return rule.params["minimum"] <= n_rows <= rule.params["maximum"]

    def gx(self, gxe, rule):
        return gxe.ExpectTableRowCountToBeBetween(min_value=rule.params["minimum"], max_value=rule.params["maximum"])

    def from_metric(self, quality):
        low, high = quality["mustBeBetween"]
        return {"minimum": low, "maximum": high}


class CompoundUnique(DatasetKind):
    """Every copy of a repeated combination is rejected."""

    name, keys, column_keys, once = "compound_unique", ("columns",), ("columns",), True
    metric, metric_keys, metric_arguments = "duplicateValues", ("arguments", "mustBe"), ("properties",)

    def detail(self, rule):
        columns = rule.params["columns"]
        return ",".join(columns), f"({', '.join(columns)}) must be unique"

    def broken_rows(self, rule, frame):
        columns = [column for column in rule.params["columns"] if column in frame.columns]
        if not columns:
            return None
        # every copy of a repeated combination, unless all its values are missing
        some_value = np.logical_or.reduce([frame[column].notna().to_numpy() for column in columns])
        return pd.Series(repeated_rows([frame[column] for column in columns]) & some_value, index=frame.index)

    def pandera(self, pa, rule):
        return {"unique": rule.params["columns"]}

    def gx(self, gxe, rule):
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(rule.params["columns"]))

    def from_metric(self, quality):
        if quality["mustBe"] != 0:
            raise ValueError(f"duplicateValues supports mustBe: 0 only, found {quality['mustBe']}")
        return {"columns": quality["arguments"]["properties"]}


class ColumnLessThan(DatasetKind):
    name, keys, column_keys = "column_less_than", ("column", "other"), ("column", "other")

    def detail(self, rule):
        return rule.params["column"], f"{rule.params['column']} must be < {rule.params['other']}"

    def broken_rows(self, rule, frame):
        column, other = rule.params["column"], rule.params["other"]
        # a missing value compares false, so breaks the rule; a row missing every value is no row (pandera)
        return ~(frame[column] < frame[other]) & _any_value(frame)

    def pandera(self, pa, rule):
        column, other = rule.params["column"], rule.params["other"]
        return {"checks": [pa.Check(lambda frame: frame[column] < frame[other], error=self.label(rule))]}

    def gx(self, gxe, rule):
        p = rule.params
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=p["other"], column_B=p["column"], or_equal=False)


def _any_value(frame: pd.DataFrame) -> pd.Series:
    """Rows with at least one value (one column without a missing value settles it for every row)."""
    if any(not frame[name].hasnans for name in frame.columns):
        return pd.Series(True, index=frame.index)
    return frame.notna().any(axis=1)


class MedianBetween(DatasetKind):
    """A unit guard: the median of the column's non-missing values within [minimum, maximum] (an empty column
    passes). On a raster: the band's `medianBetween` custom property (contracts.raster)."""

    name, keys, column_keys, whole_table = "median_between", ("column", "minimum", "maximum"), ("column",), True
    raster_property = "medianBetween"

    def detail(self, rule):
        p = rule.params
        return p["column"], (
            f"median {p['column']} must be within [{p['minimum']}, {p['maximum']}] ({rule.description.strip()})"
        )

    def tally(self, rule):
        return Tally(rule.params["column"], keep_values=True)

    def holds(self, rule, tally, n_rows):
        return self.within(tally.median(), rule.params["minimum"], rule.params["maximum"])

    @staticmethod
    def within(median: float, minimum: float, maximum: float) -> bool:
        return median != median or minimum <= median <= maximum

    def gx(self, gxe, rule):
        p = rule.params
        return gxe.ExpectColumnMedianToBeBetween(column=p["column"], min_value=p["minimum"], max_value=p["maximum"])


class NullPercentMax(DatasetKind):
    name, keys, column_keys, whole_table = "null_percent_max", ("column", "maximum"), ("column",), True
    metric, metric_keys, metric_arguments = "nullValues", ("arguments", "unit", "mustBeLessOrEqualTo"), ("properties",)

    def detail(self, rule):
        p = rule.params
        return p["column"], f"at most {p['maximum']} % of {p['column']} may be missing ({rule.description.strip()})"

    def holds(self, rule, tally, n_rows):
        return bool(n_rows) and (n_rows - tally.non_null) / n_rows * 100 <= rule.params["maximum"]

    def gx(self, gxe, rule):
        return gxe.ExpectColumnValuesToNotBeNull(column=rule.params["column"], mostly=1 - rule.params["maximum"] / 100)

    def from_metric(self, quality):
        if quality["unit"] != "percent":
            raise ValueError(f"nullValues supports unit: percent only, found {quality['unit']}")
        if len(quality["arguments"]["properties"]) != 1:
            raise ValueError(f"nullValues takes one column, found {quality['arguments']['properties']}")
        return {"column": quality["arguments"]["properties"][0], "maximum": quality["mustBeLessOrEqualTo"]}


class MinNonNull(DatasetKind):
    """Also a drop-level gate on the sites that get a stock (ingest, drop_check)."""

    name, keys, column_keys, whole_table = "min_non_null", ("column", "minimum"), ("column",), True

    def detail(self, rule):
        p = rule.params
        return "*", f"at least {p['minimum']} non-missing {p['column']} required ({rule.description.strip()})"

    def holds(self, rule, tally, n_rows):
        return tally.non_null >= rule.params["minimum"]


class MaxRejectedShare(DatasetKind):
    """Drop-level gate on the share of quarantined rows (contracts.validate.share_gate)."""

    name, keys, once = "max_rejected_share", ("maximumPct",), True


class CollapseIdentical(DatasetKind):
    """Rows identical in every column become one counting its copies (contracts.validate.collapse_identical)."""

    name, keys, column_keys, once = "collapse_identical", ("countColumn",), ("countColumn",), True


class PointKind(DatasetKind):
    """A plausibility rule on coordinates that passed their ranges; a row broken by it is rejected."""

    on_points = True
    column_keys = ("longitude", "latitude")

    def detail(self, rule):
        return f"{rule.params['longitude']},{rule.params['latitude']}", ""

    def broken(self, rule, lon: pd.Series, lat: pd.Series, land, regions) -> tuple[np.ndarray, str] | None:
        """Which points break the rule and the reject detail; None when what it tests against is not given."""
        raise NotImplementedError


class PointOnLand(PointKind):
    """On land: a land cell of `land` (contracts.validate.LandMask, e.g. the `landMask` asset) within
    `toleranceCells` cells."""

    name, keys = "point_on_land", ("longitude", "latitude", "landMask", "toleranceCells")

    def broken(self, rule, lon, lat, land, regions):
        if land is None:
            return None
        cells = rule.params["toleranceCells"]
        detail = f"site must lie on land: within {cells} cell(s) of a {land.name} land cell"
        return ~land.near(lon.to_numpy(), lat.to_numpy(), cells), detail


class PointRegionExcluded(PointKind):
    """Not in an excluded region: the code (ADM0_A3) of the polygon of `regions` (contracts.validate.Regions, e.g.
    the `regions` asset) holding the point, or the nearest within `toleranceDeg`."""

    name = "point_region_excluded"
    keys = ("longitude", "latitude", "regions", "toleranceDeg", "excludedAdm0A3")

    def broken(self, rule, lon, lat, land, regions):
        if regions is None:
            return None
        p = rule.params
        codes = regions.codes_at(lon, lat, p["toleranceDeg"])
        detail = f"site lies in an excluded region ({', '.join(p['excludedAdm0A3'])}): {rule.description.strip()}"
        return np.isin(codes, p["excludedAdm0A3"]), detail


DATASET_KINDS = {
    kind.name: kind
    for kind in (
        RowCount(),
        CompoundUnique(),
        ColumnLessThan(),
        MedianBetween(),
        NullPercentMax(),
        MinNonNull(),
        MaxRejectedShare(),
        CollapseIdentical(),
        PointOnLand(),
        PointRegionExcluded(),
    )
}
METRIC_KINDS = {kind.metric: kind for kind in DATASET_KINDS.values() if kind.metric}

# A raster contract's grid and encoding (schema customProperties), each checked by contracts.raster as a rule of its
# own, the depth interval of a stock layer, and its band's properties (its range is its logicalTypeOptions).
RASTER_GRID_PROPERTIES = (
    "crs",
    "resolutionDeg",
    "extentDeg",
    "dtype",
    "nodata",
    "nodataTagged",
    "scale",
    "offset",
    "bandCount",
)
# minLandShare: the share of the land (cells of the common grid with a 2010 SOC stock) its values must cover.
RASTER_GRID_OPTIONAL = ("depthCm", "minLandShare")
# referenceRatio: a second stock source's mean over the cells it shares with the 2010 stock layer, over the latter's.
RASTER_BAND_PROPERTIES = ("unit", "rangeSource", MedianBetween.raster_property, "referenceRatio")
