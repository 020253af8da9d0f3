"""A separate process (GX's views are changed for the whole process) that renders Data Docs of the AfSP horizons
before and after `gx_worker.share_compiled_templates`, counting the templates Jinja compiles.

python -m soil_pipeline_tests.gx_template_compiles FOLDER
    render into FOLDER/plain, then FOLDER/shared_0 and FOLDER/shared_1; print the compiles of each as JSON.
"""

import json
import sys
from pathlib import Path

import jinja2

from soil_pipeline.contracts import gx_worker
from soil_pipeline.contracts.gx_suite import run_gx
from soil_pipeline.contracts.model import load_table_contract
from soil_pipeline.contracts.validate import validate
from soil_pipeline.readers import read_table_file
from soil_pipeline.resources import InputDatasets


def main(folder: Path) -> None:
    contract = load_table_contract("field_horizons")
    landing = Path(InputDatasets().drop_dir("2012-10")) / "afsp_horizons.csv"
    horizons = read_table_file(landing, contract.source_columns())
    checked = validate(horizons, contract).checked
    compiles = []
    compile_template = jinja2.Environment.compile

    def counted(environment, *args, **kwargs):
        compiles.append(args[1] if len(args) > 1 else kwargs.get("name"))
        return compile_template(environment, *args, **kwargs)

    jinja2.Environment.compile = counted

    def render(name: str) -> int:
        before = len(compiles)
        run_gx(checked, contract, folder / name)
        return len(compiles) - before

    counts = {"plain": render("plain")}
    gx_worker.share_compiled_templates()
    counts |= {name: render(name) for name in ("shared_0", "shared_1")}
    print(json.dumps(counts))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
