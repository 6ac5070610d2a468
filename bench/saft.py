"""SAF-T D406: the streaming writer and validator vs a whole-tree build, in the same run.

    .venv/bin/python bench/saft.py                  # 1,000,000 GL lines
    .venv/bin/python bench/saft.py --lines 200000
    .venv/bin/python bench/saft.py --lines 200000 --skip-tree-validate

Sample data (``workers_core.saft.sample``) is written once to a temp dir; then each step runs
in its own subprocess, so its peak RSS (``ru_maxrss``) is its own:

    stream          generate(): lxml ``etree.xmlfile``, one record at a time
    tree            build_tree(): the same elements in one lxml tree, then ``tostring``
    validate-stream validate_file(): iterparse, XSD per Transaction/Invoice/Payment + rules
    validate-tree   etree.parse() the whole file + XMLSchema.validate (XSD only, no rules)

The table prints wall and CPU seconds and peak RSS, and the ratios tree/stream. The machine
is shared: read the ratios (taken in the same run), not the absolute seconds.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workers_core.config import Settings  # noqa: E402
from workers_core.efactura.schemas import schemas_root  # noqa: E402

MODES = ("stream", "tree", "validate-stream", "validate-tree")


def _child(mode: str, data: Path, xml: Path, schemas: Path) -> dict[str, Any]:
    from lxml import etree  # type: ignore[import-untyped]

    from workers_core.saft.validate import schema_for, validate_file
    from workers_core.saft.writer import FILED_NS, build_tree, generate

    if mode.startswith("validate"):
        schema_for(schemas.resolve(), FILED_NS)  # compile outside the timing
    started, cpu = time.perf_counter(), time.process_time()
    extra: dict[str, Any] = {}
    if mode == "stream":
        extra["gl_lines"] = generate(data, xml).gl_lines
    elif mode == "tree":
        xml.write_bytes(build_tree(data))
    elif mode == "validate-stream":
        report = validate_file(xml, schemas)
        extra = {"ok": report.ok, "violations": len(report.violations)}
    else:
        tree = etree.parse(str(xml), etree.XMLParser(huge_tree=True, resolve_entities=False))
        extra = {"ok": bool(schema_for(schemas.resolve(), FILED_NS).schema.validate(tree))}
    return {
        "mode": mode,
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }


def _run(mode: str, data: Path, xml: Path, schemas: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--data",
        str(data),
        "--xml",
        str(xml),
        "--schemas",
        str(schemas),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _baseline_rss(schemas: Path, compile_xsd: bool) -> float:
    """Peak RSS of a child that only imports (and compiles the XSD): a row's floor."""
    code = (
        "import resource, sys; sys.path.insert(0, %r); "
        "from workers_core.saft.validate import schema_for; "
        "from workers_core.saft.writer import FILED_NS; from pathlib import Path; "
        + ("schema_for(Path(%r).resolve(), FILED_NS); " if compile_xsd else "%r; ")
        + "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code % (str(ROOT), str(schemas))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--skip-tree-validate",
        action="store_true",
        help="skip the whole-tree XSD validation (GBs of RAM at 1M lines)",
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--xml", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--schemas", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.data, args.xml, args.schemas)))
        return
    from workers_core.saft.sample import write_sample

    schemas = schemas_root(Settings())
    with tempfile.TemporaryDirectory(prefix="saft-bench-") as tmp:
        data, xml, tree_xml = Path(tmp, "data"), Path(tmp, "d406.xml"), Path(tmp, "tree.xml")
        started = time.perf_counter()
        write_sample(data, args.lines)
        print(
            f"sample: {args.lines:,} GL lines in {time.perf_counter() - started:.1f} s; "
            f"load {os.getloadavg()[0]:.2f}"
        )
        rows = [_run("stream", data, xml, schemas), _run("tree", data, tree_xml, schemas)]
        # Compared in chunks: a child's ru_maxrss starts at the parent's RSS at fork time.
        same = filecmp.cmp(xml, tree_xml, shallow=False)
        size_mb = xml.stat().st_size / 1e6
        tree_xml.unlink()
        rows.append(_run("validate-stream", data, xml, schemas))
        if not args.skip_tree_validate:
            rows.append(_run("validate-tree", data, xml, schemas))
        floors = {
            "stream": _baseline_rss(schemas, False),
            "validate-stream": _baseline_rss(schemas, True),
        }
    print(
        f"D406: {size_mb:.0f} MB; stream and tree outputs identical: {same}; floor RSS: "
        f"imports {floors['stream']:.0f} MB, + compiled XSD {floors['validate-stream']:.0f} MB"
    )
    print(f"{'mode':<16}{'wall s':>9}{'cpu s':>9}{'peak RSS MB':>13}  notes")
    for row in rows:
        notes = {k: v for k, v in row.items() if k not in ("mode", "wall_s", "cpu_s", "max_rss_mb")}
        print(
            f"{row['mode']:<16}{row['wall_s']:>9.1f}{row['cpu_s']:>9.1f}"
            f"{row['max_rss_mb']:>13.0f}  {notes or ''}"
        )
    by = {row["mode"]: row for row in rows}
    for fast, slow in (("stream", "tree"), ("validate-stream", "validate-tree")):
        if fast in by and slow in by:
            a, b, floor = by[fast], by[slow], floors[fast]
            print(
                f"{slow}/{fast}: time x{b['wall_s'] / a['wall_s']:.2f} (cpu "
                f"x{b['cpu_s'] / a['cpu_s']:.2f}), "
                f"peak RSS x{b['max_rss_mb'] / a['max_rss_mb']:.1f}"
                f" (above floor x{(b['max_rss_mb'] - floor) / max(a['max_rss_mb'] - floor, 1):.1f})"
            )
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
