"""Typed input errors (`errors.InputError`) as Dagster failures: the error's fields (file, line or pixel window,
rule broken, remedy) in the failure's metadata, so the UI shows them and `soil-pipeline run` prints them
(`runner.StepFailure`). Dagster stores a failure with the whole chain of exceptions under it (run storage, the UI):
every message of that chain is redacted first (`redaction.scrub_exception`), so a password or signature in a URL
never reaches them."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from soil_pipeline.errors import InputError
from soil_pipeline.redaction import redact, scrub_exception


def as_failure(error: InputError) -> dg.Failure:
    """The step failure of `error`: its message as the description, its fields as metadata."""
    scrub_exception(error)
    fields = error.fields()
    metadata = {key: dg.MetadataValue.path(value) if key == "file" else value for key, value in fields.items()}
    return dg.Failure(description=redact(str(error)), metadata=metadata)


@contextmanager
def reported() -> Iterator[None]:
    """Fail the step with `as_failure` when an `InputError` is raised inside (in an asset's body, around the code
    reading its inputs); any other exception leaves with its messages redacted."""
    try:
        yield
    except InputError as error:
        raise as_failure(error) from error
    except Exception as error:
        scrub_exception(error)
        raise
