"""Typed input errors: what failed (the file, and the line or pixel window when known), the rule broken and what to
do about it. They are raised where the cause is known (readers, declarations, the contract gates of an ingest, raster
contract checks); the Dagster layer carries their fields in the step failure's metadata (`failures.reported`), which
the UI shows and `soil-pipeline run` prints. No Dagster.
"""

from collections.abc import Iterable
from enum import StrEnum

from soil_pipeline.redaction import redact


class Remedy(StrEnum):
    """What to do about a broken rule, one per kind of problem."""

    UTF8 = "save the file as UTF-8 text"
    DELIMITER = "write the file with commas as the delimiter"
    SYMLINK = "copy the file into the drop folder instead of linking to it"
    COLUMN_NAMES = "rename or remove one of the two columns in the header"
    REQUIRED_COLUMNS = (
        "add the column, or declare its header in the drop's declaration.yaml (docs/bring_your_own_data.md)"
    )
    DECLARATION = "correct the declaration file (docs/bring_your_own_data.md)"
    DECLARED_FILE = "put exactly one file matching the declared pattern in the drop folder, or correct the pattern"
    UNITS = "convert the column to the unit the contract states"
    ROW_COUNT = "re-export the table with all its rows (the contract bounds how many a drop may have)"
    MISSING_VALUES = "fill the column from the source, or check that the right header is declared for it"
    DROP_AS_A_WHOLE = "the drop is wrong as a whole (truncated, shifted columns?): compare it with its source"
    PLAUSIBILITY = (
        "correct the declaration (units, coordinates_crs, columns) or, if the values are right, confirm the check in "
        "it: confirm: {<check>: <the declared value>, reason: ...} (docs/bring_your_own_data.md)"
    )
    NO_STOCK = "no site has a 0-30 cm stock: check depths and SOC/BD columns against the source"
    NOT_A_FILE = "put the table itself in the drop folder: a regular file, not a directory, named pipe or device"
    ONE_TABLE_EACH = "put exactly one *sites and one *horizons table (.csv or .parquet) in the drop folder"
    DROP_FOLDER = "create <landing>/field_samples/YYYY-MM/ or pick a partition that has one"
    COMPLETE_CSV = "re-export the complete file (every record with every column, quotes closed)"
    EMPTY = "re-export the file with its header and rows"
    UNREADABLE = "re-export the file; it cannot be parsed"
    RASTER_CONTRACT = (
        "write the raster as its contract states (data_contracts/), or declare its unit, scale/offset, nodata and "
        "extent in the raster_declaration file (docs/bring_your_own_data.md)"
    )
    DECLARE_RASTER = "declare the raster in the raster_declaration file (docs/bring_your_own_data.md)"
    RASTER_PLAUSIBILITY = (
        "check the raster's unit, scale, nodata and coverage against its source and correct its declaration; if "
        "the values are right, confirm the rule with a reason (confirm: {<rule>: <why>} in its raster_declaration "
        "entry, docs/bring_your_own_data.md)"
    )
    RASTER_LIMITS = (
        "write the raster tiled (e.g. gdal_translate -co TILED=YES -co COMPRESS=DEFLATE), or raise the limit on the "
        "raster_engine resource (max_raster_cells, max_raster_bytes, max_block_bytes) if the size is real"
    )
    UNSCALED = "write the raster with its values as they are (scale 1, offset 0)"
    RASTER_LAYOUT = "write the raster in EPSG:4326 with the bands and the nodata value its role needs"
    RASTER_VALUES = "check the raster's unit and scaling against its source"
    COUNTRIES = "use a Natural Earth admin-0 countries layer (its ADM0_A3, NAME, ... columns) in lon/lat WGS84"
    INPUT_CHANGED = (
        "rerun once the file has stopped changing (put a new file in place whole: write it elsewhere, then move it)"
    )
    OTHER = "correct the input and rerun"


# The remedy for a broken dataset-level contract rule, by the rule's kind (data_contracts/*.yaml).
DATASET_RULE_REMEDIES = {
    "median_between": Remedy.UNITS,
    "max_rejected_share": Remedy.DROP_AS_A_WHOLE,
    "row_count": Remedy.ROW_COUNT,
    "min_non_null": Remedy.MISSING_VALUES,
    "null_percent_max": Remedy.MISSING_VALUES,
}


class InputError(ValueError):
    """An input the pipeline cannot use: `file` (None when no one file is to blame), the `rule` it breaks, the
    `remedy`, the `line` or pixel `window` when known, and `details` (further broken rules, example rows).

    `str(error)` is `<file>: <text>`, `text` being the rule unless given (e.g. a report of several rules). Every
    field is redacted (`redaction.redact`): a URL's password or signature never reaches a message or metadata."""

    default_remedy = Remedy.OTHER

    def __init__(
        self,
        file,
        rule: str,
        remedy: Remedy | None = None,
        *,
        line: int | None = None,
        window: str | None = None,
        details: Iterable[str] = (),
        text: str | None = None,
    ):
        self.file = None if file is None else redact(str(file))
        self.rule, self.remedy = redact(rule), remedy or self.default_remedy
        self.line, self.window, self.details = line, window, tuple(redact(detail) for detail in details)
        text = redact(text or rule)
        super().__init__(f"{self.file}: {text}" if self.file else text)

    def __reduce__(self):  # pickled (from a Dask worker) with its fields, not rebuilt from the message alone
        return _restore, (type(self), self.args, self.__dict__)

    def fields(self) -> dict[str, str | int]:
        """The known fields, as a failure's metadata carries them."""
        fields = {"file": self.file, "rule": self.rule, "line": self.line, "window": self.window}
        fields["details"] = "\n".join(self.details) or None
        return {key: value for key, value in {**fields, "remedy": str(self.remedy)}.items() if value is not None}

    @classmethod
    def joined(cls, errors: list["InputError"]) -> "InputError":
        """Several errors as one: the first one's fields, the others' messages as its details."""
        first, *others = errors
        if not others:
            return first
        details = [*first.details, *(line for error in others for line in str(error).splitlines())]
        joined = type(first)(
            first.file, first.rule, first.remedy, line=first.line, window=first.window, details=details
        )
        joined.args = (redact("\n".join(str(error) for error in errors)),)
        return joined


def _restore(cls, args: tuple, fields: dict) -> InputError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(fields)
    return error


class DeclarationError(InputError):
    """A declaration or configuration file that cannot be used (field drop, rasters, scenarios, run config)."""

    default_remedy = Remedy.DECLARATION


class BrokenRule(str):
    """The text of a broken dataset-level contract rule, as reported, knowing the `kind` of the rule (which names
    the remedy, `DATASET_RULE_REMEDIES`)."""

    kind: str

    def __new__(cls, text: str, kind: str):
        broken = super().__new__(cls, text)
        broken.kind = kind
        return broken

    def __reduce__(self):
        return BrokenRule, (str(self), self.kind)

    @property
    def remedy(self) -> Remedy:
        return DATASET_RULE_REMEDIES.get(self.kind, Remedy.OTHER)
