"""Monthly partitions of the field-sample drops (`<landing>/field_samples/YYYY-MM/`)."""

import dagster as dg

# The embedded Africa Soil Profiles compilation is the 2012-10 drop (its latest sampling date is 2012-10-08).
FIELD_DROP_START = "2012-10"
EMBEDDED_DROP_PARTITION = "2012-10"

monthly_drops = dg.MonthlyPartitionsDefinition(start_date=FIELD_DROP_START, fmt="%Y-%m")
