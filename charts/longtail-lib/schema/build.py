#!/usr/bin/env python3
"""Writes every chart's values.schema.json from the library's schema fragments and the chart's own.

Helm validates a chart's values against the chart's own values.schema.json only, and does not
reliably resolve a $ref into a dependency, so the shared part is composed here and the result is
committed (tests/charts/test_charts_common.py fails when it is stale):

    python3 charts/longtail-lib/schema/build.py           # rewrite charts/*/values.schema.json
    python3 charts/longtail-lib/schema/build.py --check   # exit 1 and name the stale files

Inputs (JSON, stdlib only):

- charts/longtail-lib/schema/common.json: the schema every chart starts from: the properties whose
  defaults longtail-lib.defaults provides (helm create's shape plus grpc, probes, metrics, log, env,
  pdb, ...), `global`, `enabled` and `longtail-lib`.
- charts/longtail-lib/schema/sections/<name>.json: the schema of an optional section (kafka, s3,
  fleet, operator, persistence), whose defaults are longtail-lib.sections.
- charts/longtail-lib/schema/defs.json: named snippets; {"$use": "<name>", ...} anywhere in a
  fragment or a patch stands for that snippet with the other keys added (e.g. a description).
- charts/<chart>/values.schema.patch.json: the chart's own part, a JSON merge patch (RFC 7386) over
  common.json: a property that names a section starts from the library's fragment for it (`"kafka":
  {}` takes it as it is), any other new property is the chart's own, `null` removes a key, objects
  merge, everything else replaces. New properties go before `env`, where a chart's own block sits in
  values.yaml.

A chart without a patch file (the umbrella) is left alone. The library supplies the defaults of the
shared sections, so the fragments do not `required` what a default always fills in: an explicit null
still fails on its type.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHARTS = HERE.parents[1]
PATCH = "values.schema.patch.json"
OUTPUT = "values.schema.json"
INSERT_BEFORE = "env"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: objects merge key by key (null deletes), anything else replaces. Keys keep their place."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def expand(node: object, defs: dict[str, dict], where: str) -> object:
    """Replaces every {"$use": name, ...} with defs[name] plus the other keys."""
    if isinstance(node, list):
        return [expand(item, defs, where) for item in node]
    if not isinstance(node, dict):
        return node
    if "$use" in node:
        name = node["$use"]
        if name not in defs:
            raise SystemExit(f"{where}: unknown $use {name!r} (defs.json has {sorted(defs)})")
        node = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$use"}}
    return {key: expand(value, defs, where) for key, value in node.items()}


def build(chart_dir: Path, library: Path = HERE) -> dict:
    """The values schema of one chart: common.json + the sections it names + its patch."""
    patch = _load(chart_dir / PATCH)
    schema = _load(library / "common.json")
    sections = {p.stem: _load(p) for p in sorted((library / "sections").glob("*.json"))}
    own = patch.get("properties", {})
    properties: dict[str, object] = {}
    for name, prop in schema["properties"].items():
        if name == INSERT_BEFORE:
            for new in (n for n in own if n not in schema["properties"] and own[n] is not None):
                properties[new] = copy.deepcopy(sections.get(new, {}))
        properties[name] = prop
    schema["properties"] = properties
    schema["title"] = f"longtail {chart_dir.name} chart values"
    schema = merge_patch(schema, patch)
    return expand(schema, _load(library / "defs.json"), str(chart_dir / PATCH))


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2) + "\n"


def chart_dirs(charts: Path = CHARTS) -> list[Path]:
    return sorted(p.parent for p in charts.glob(f"*/{PATCH}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a values.schema.json is stale")
    parser.add_argument("--charts", type=Path, default=CHARTS, help="the charts directory (default: the one holding this library)")
    args = parser.parse_args(argv)
    library = args.charts / "longtail-lib" / "schema"
    stale = []
    for chart in chart_dirs(args.charts):
        text = render(build(chart, library))
        out = chart / OUTPUT
        if not out.exists() or out.read_text() != text:
            stale.append(out)
            if not args.check:
                out.write_text(text)
    for out in stale:
        print(f"{'stale' if args.check else 'wrote'}: {out}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
