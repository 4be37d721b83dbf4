"""What ``python -m atbsn_kernels.gpu_check`` reads and writes: its step records, the parsers of
cuobjdump's SASS and resource-usage text and of pytest's junit XML, the Triton cache's cubins and
metadata, and the report (``gpu_check.json``, ``GPU_CHECK.md`` and the one-screen summary). No GPU
and no subprocess here."""

from __future__ import annotations

import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

JSON_NAME = "gpu_check.json"
MARKDOWN_NAME = "GPU_CHECK.md"
# details key whose value is Markdown text, written into the report as it is
MARKDOWN_KEY = "markdown"
# SASS opcodes counted per kernel: tensor-core MMAs (Ampere's HMMA, Hopper's HGMMA), asynchronous
# global -> shared copies (LDGSTS), plain global loads (LDG) and local-memory loads and stores (LDL,
# STL: register spills, which cuobjdump's resource usage shows only as STACK bytes)
SASS_OPCODES = ("HMMA", "HGMMA", "LDGSTS", "LDG", "LDL", "STL")
# "Function : name" (--dump-sass) and "Function name:" (--dump-resource-usage)
FUNCTION_RE = re.compile(r"^\s*Function\s*:?\s*([^\s:]+)")
ARCH_RE = re.compile(r"code for (sm_\w+)")
# "/*0a40*/  @!P0 LDGSTS.E.BYPASS.128 [R5], desc[UR4][R2.64] ;": the opcode, without its modifiers
INSTRUCTION_RE = re.compile(r"/\*[0-9a-fA-F]{4,}\*/\s+(?:@!?\w+\s+)?([A-Z][A-Z0-9_]*)")
JUNIT_OUTCOMES = ("failure", "error", "skipped")  # child elements of a junit testcase, in precedence order
TRITON_KERNELS = ("_conv_kernel", "_weight_grad_kernel", "_pool")  # in the names of our Triton kernels' cubins
TRITON_METADATA = ("num_warps", "num_stages", "num_ctas", "shared", "maxnreg")  # kept from a cubin's JSON
RESOURCE_FIELDS = {
    "registers": re.compile(r"\bREG:(\d+)"),
    "stack": re.compile(r"\bSTACK:(\d+)"),
    "shared": re.compile(r"\bSHARED:(\d+)"),
    "local": re.compile(r"\bLOCAL:(\d+)"),
    "spill_stores": re.compile(r"(\d+) bytes spill stores|spill stores\W*(\d+)", re.IGNORECASE),
    "spill_loads": re.compile(r"(\d+) bytes spill loads|spill loads\W*(\d+)", re.IGNORECASE),
}


class CheckError(Exception):
    """A step failed for the reason in the message."""


@dataclass
class Record:
    """One step of the check: ``ok`` is None when it was skipped; ``summary`` is one line."""

    step: str
    ok: bool | None
    seconds: float
    summary: str
    details: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return {True: "ok", False: "FAILED", None: "skipped"}[self.ok]


def count_sass(text: str) -> dict[str, dict[str, int]]:
    """Per kernel function of ``cuobjdump --dump-sass`` text: how many instructions it has in all
    and of each of :data:`SASS_OPCODES`. A function met again (another arch in the same fatbin) is
    keyed ``"name (sm_XX)"``."""
    counts: dict[str, dict[str, int]] = {}
    current, arch = None, "?"
    for line in text.splitlines():
        if found := ARCH_RE.search(line):
            arch = found.group(1)
        elif found := FUNCTION_RE.match(line):
            name = found.group(1)
            current = name if name not in counts else f"{name} ({arch})"
            counts[current] = dict.fromkeys((*SASS_OPCODES, "instructions"), 0)
        elif current is not None and (found := INSTRUCTION_RE.search(line)):
            row = counts[current]
            row["instructions"] += 1
            if found.group(1) in SASS_OPCODES:
                row[found.group(1)] += 1
    return counts


def parse_resource_usage(text: str) -> dict[str, dict[str, int]]:
    """Per kernel function of ``cuobjdump --dump-resource-usage`` text: registers, stack, shared and
    local bytes and spill stores/loads, those of :data:`RESOURCE_FIELDS` that its lines give."""
    usage: dict[str, dict[str, int]] = {}
    current = None
    for line in text.splitlines():
        if found := FUNCTION_RE.match(line):
            current = usage.setdefault(found.group(1), {})
        if current is None:
            continue
        for key, pattern in RESOURCE_FIELDS.items():
            if found := pattern.search(line):
                current[key] = int(next(group for group in found.groups() if group is not None))
    return usage


def parse_junit(path: str | Path) -> dict:
    """Counts of a pytest junit XML file (passed, failed, errors, skipped: each test counted once,
    a failure before an error) and the names of the tests that failed or errored."""
    cases = list(ET.parse(path).getroot().iter("testcase"))
    outcomes = [next((kind for kind in JUNIT_OUTCOMES if case.find(kind) is not None), "passed") for case in cases]
    failed = [case for case, outcome in zip(cases, outcomes, strict=True) if outcome in ("failure", "error")]
    return {
        "passed": outcomes.count("passed"), "failed": outcomes.count("failure"), "errors": outcomes.count("error"),
        "skipped": outcomes.count("skipped"), "failures": [f"{c.get('classname')}::{c.get('name')}" for c in failed],
    }


def sass_summary(rows: list[dict]) -> str:
    """``"extension: 12 kernels, 8 with HMMA/HGMMA; triton: ...; 2 with spills (LDL/STL)"`` of the
    SASS step's rows."""
    counts = []
    for kind in ("extension", "triton"):
        mine = [r for r in rows if r["kind"] == kind]
        counts.append(f"{kind}: {len(mine)} kernels, {sum(r['HMMA'] + r['HGMMA'] > 0 for r in mine)} with HMMA/HGMMA")
    spilling = sum(bool(r["LDL"] or r["STL"] or r.get("spill_stores") or r.get("spill_loads")) for r in rows)
    return "; ".join([*counts, f"{spilling} with spills (LDL/STL)"])


def triton_cache() -> Path:
    """Triton's cache folder: TRITON_CACHE_DIR, else ``~/.triton/cache`` (under TRITON_HOME if set)."""
    default = Path(os.environ.get("TRITON_HOME", Path.home())) / ".triton" / "cache"
    return Path(os.environ.get("TRITON_CACHE_DIR", default))


def triton_cubins() -> list[Path]:
    """Our Triton kernels' cubins in the Triton cache."""
    cubins = triton_cache().rglob("*.cubin") if triton_cache().is_dir() else []
    return sorted(p for p in cubins if any(name in p.stem for name in TRITON_KERNELS))


def triton_metadata(cubin: Path) -> dict:
    """The cubin's cache entry (the first 8 characters of its hash), arch and the launch settings
    of :data:`TRITON_METADATA` that its JSON metadata holds."""
    meta_path = cubin.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    arch = meta.get("target", {}).get("arch")
    return {"cache": cubin.parent.name[:8], **({"arch": arch} if arch else {}),
            **{key: meta[key] for key in TRITON_METADATA if meta.get(key) is not None}}


def benchmark_report(json_path: Path, out: Path, command: str, bench_dir: Path) -> tuple[int, str]:
    """BENCHMARKS.md from ``json_path`` in ``out`` with the report code of the checkout's
    ``bench_dir`` (benchmarks/bench_report, as ``atbsn bench`` writes it, without the plots);
    returns (the number of comparisons, the report's summary tables, one heading level down)."""
    if not (bench_dir / "bench_report").is_dir():
        raise CheckError(f"the benchmark report code comes with the source checkout: no {bench_dir / 'bench_report'}")
    if str(bench_dir) not in sys.path:
        sys.path.insert(0, str(bench_dir))
    from bench_report import REPORT, load_run
    from bench_report.markdown import layer_summary, render, summary

    run_ = load_run(json_path)
    (out / REPORT).write_text(render(run_, command))
    tables = [f"#{line}" if line.startswith("## ") else line for line in layer_summary(run_) + [""] + summary(run_)]
    return len(run_.groups()), "\n".join(tables)


def ended(code: int | None, limit: float) -> str:
    """How a subprocess ended, for a summary line."""
    return f"ran past its {limit:.0f} s limit" if code is None else f"exit status {code}"


def exit_code(records: list[Record]) -> int:
    """0 when no step failed (skipped steps do not fail), else 1."""
    return 1 if any(r.ok is False for r in records) else 0


def step_line(record: Record, width: int = 110) -> str:
    """One line of the console summary: status, step, seconds and its summary, cut to ``width``."""
    line = f"  {record.status:<8} {record.step:<12} {record.seconds:7.1f} s  {record.summary}"
    return line if len(line) <= width else line[: width - 3] + "..."


def outcome_line(records: list[Record], report: Path) -> str:
    """The console summary's last line: how many steps passed, failed and were skipped, and the report."""
    counts = {status: sum(r.status == status for r in records) for status in ("ok", "FAILED", "skipped")}
    total = sum(r.seconds for r in records)
    return f"gpu_check: {', '.join(f'{n} {s}' for s, n in counts.items())} in {total:.0f} s; report: {report}"


def _cell(value) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict]) -> list[str]:
    """A Markdown table of ``rows`` (dicts); its columns are their keys in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]


def _details(details: dict) -> list[str]:
    """A step's details: scalars as one key/value table, lists of dicts as tables, other lists as
    bullet lines, the :data:`MARKDOWN_KEY` text as it is."""
    scalars = [{"": key, "value": value} for key, value in details.items() if not isinstance(value, (list, dict))]
    lines = markdown_table(scalars) + [""] if scalars else []
    for key, value in details.items():
        if key == MARKDOWN_KEY:
            lines += [value, ""]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines += [f"**{key}**", "", *markdown_table(value), ""]
        elif isinstance(value, (list, dict)):
            lines += [f"**{key}**: {', '.join(map(str, value)) if isinstance(value, list) else json.dumps(value)}"
                      if value else f"**{key}**: none", ""]
    return lines


def render_markdown(records: list[Record], header: dict) -> str:
    """GPU_CHECK.md: the run's header, the table of steps, then one section per step."""
    steps = [{"step": r.step, "status": f"**{r.status}**" if r.ok is False else r.status,
              "seconds": f"{r.seconds:.1f}", "summary": r.summary} for r in records]
    lines = ["# gpu_check", "", *markdown_table([{"": k, "value": v} for k, v in header.items()]), "",
             *markdown_table(steps), ""]
    for r in records:
        lines += [f"## {r.step}: {r.status} ({r.seconds:.1f} s)", "", r.summary, "", *_details(r.details)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(records: list[Record], out_dir: Path, header: dict) -> tuple[Path, Path]:
    """Write gpu_check.json (the header and every record) and GPU_CHECK.md into ``out_dir``."""
    json_path, markdown_path = out_dir / JSON_NAME, out_dir / MARKDOWN_NAME
    data = {**header, "ok": exit_code(records) == 0, "steps": [asdict(r) for r in records]}
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    markdown_path.write_text(render_markdown(records, header))
    return json_path, markdown_path
