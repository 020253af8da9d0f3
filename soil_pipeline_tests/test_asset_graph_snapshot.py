"""A snapshot of the asset graph (keys, groups, dependencies, partitions, checks, owners, kinds, freshness, code
versions, jobs, schedules and sensors): a change to it is made on purpose and reviewed as a diff of
snapshots/asset_graph.json. After an intended change, write the new snapshot with

    SOIL_PIPELINE_UPDATE_SNAPSHOT=1 pytest soil_pipeline_tests/test_asset_graph_snapshot.py
"""

import json
import os
from pathlib import Path

from soil_pipeline.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _graph() -> dict:
    definitions = build_definitions()
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": getattr(node.partitions_def, "name", None)
            or (type(node.partitions_def).__name__ if node.partitions_def else None),
            "checks": sorted(check.name for check in node.check_keys),
            "owners": sorted(node.owners),
            "kinds": sorted(node.kinds),
            "freshness": type(node.freshness_policy).__name__ if node.freshness_policy else None,
            "code_version": node.code_version,
            "observable": node.is_observable,
        }
    repository = definitions.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in repository.get_all_jobs() if not job.name.startswith("__")),
        "schedules": sorted(schedule.name for schedule in repository.schedule_defs),
        "sensors": sorted(sensor.name for sensor in repository.sensor_defs),
    }


def test_the_asset_graph_matches_its_snapshot():
    current = json.dumps(_graph(), indent=1, sort_keys=True) + "\n"
    if os.environ.get("SOIL_PIPELINE_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(current)
    assert current == SNAPSHOT.read_text(), "the asset graph changed: review and update the snapshot (module docstring)"
