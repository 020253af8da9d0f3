"""Typed input errors (`errors.InputError`) as Dagster failures: the error's fields (file, line or pixel window,
rule broken, remedy) in the failure's metadata, so the UI shows them and `soil-pipeline run` prints them
(`runner.StepFailure`)."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from soil_pipeline.errors import InputError


def as_failure(error: InputError) -> dg.Failure:
    """The step failure of `error`: its message as the description, its fields as metadata."""
    fields = error.fields()
    metadata = {key: dg.MetadataValue.path(value) if key == "file" else value for key, value in fields.items()}
    return dg.Failure(description=str(error), metadata=metadata)


@contextmanager
def reported() -> Iterator[None]:
    """Fail the step with `as_failure` when an `InputError` is raised inside (in an asset's body, around the code
    reading its inputs)."""
    try:
        yield
    except InputError as error:
        raise as_failure(error) from error
