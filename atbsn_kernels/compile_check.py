"""Compile every GPU kernel of the package without a GPU: ``python -m atbsn_kernels.compile_check``.

Triton kernels are compiled ahead of time (``triton.compile`` for a ``GPUTarget``) and every
``csrc/cuda/*.cu`` file is compiled to PTX with nvcc, for each arch (default sm_80 and sm_90).
Prints a table (kernel, arch, ok, tensor-core instructions found) and exits non-zero on any
failure, or when a kernel marked ``tensor_cores`` compiles without tensor-core instructions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CUDA_DIR = REPO_ROOT / "csrc" / "cuda"
TENSOR_CORE_PATTERNS = {"wgmma": re.compile(r"\bwgmma\.mma_async"), "mma.sync": re.compile(r"\bmma\.sync\.aligned")}


@dataclass
class Result:
    kind: str
    name: str
    arch: int
    ok: bool
    tensor_cores: str
    detail: str = ""


def tensor_core_instructions(ptx: str) -> str:
    """Comma list of the tensor-core instruction families found in PTX text ('-' if none)."""
    found = [name for name, pattern in TENSOR_CORE_PATTERNS.items() if pattern.search(ptx)]
    return ",".join(found) or "-"


def triton_targets() -> list[dict]:
    """Every ``COMPILE_TARGETS`` entry of the modules in ``atbsn_kernels.triton``."""
    from atbsn_kernels.triton import KERNEL_MODULES

    targets = []
    for module_name in KERNEL_MODULES:
        module = importlib.import_module(f"atbsn_kernels.triton.{module_name}")
        targets += [dict(t, module=module_name) for t in module.COMPILE_TARGETS]
    return targets


def compile_triton(target: dict, arch: int) -> Result:
    import triton
    from triton.backends.compiler import GPUTarget

    name = f"{target['module']}.{target['name']}"
    try:
        source = triton.compiler.ASTSource(fn=target["fn"], signature=target["signature"], constexprs=target["constexprs"])
        options = {"num_warps": target.get("num_warps", 4), "num_stages": target.get("num_stages", 3)}
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    except Exception as exc:  # any compiler error is a failed row, reported with its message
        return Result("triton", name, arch, False, "-", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    found = tensor_core_instructions(compiled.asm["ptx"])
    ok = bool(compiled.asm.get("cubin")) and (found != "-" or not target.get("tensor_cores", False))
    detail = "" if ok else "expected tensor-core instructions, found none"
    return Result("triton", name, arch, ok, found, detail)


def find_nvcc() -> str | None:
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = Path(cuda_home) / "bin" / "nvcc"
    return str(candidate) if candidate.exists() else shutil.which("nvcc")


def compile_cuda(nvcc: str, source: Path, arch: int) -> Result:
    name = str(source.relative_to(REPO_ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        ptx_path = Path(tmp) / "out.ptx"
        cmd = [nvcc, "-std=c++20", f"-I{REPO_ROOT / 'csrc'}", f"-arch=sm_{arch}", "-ptx", str(source), "-o", str(ptx_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return Result("cuda", name, arch, False, "-", (proc.stderr or proc.stdout).strip().splitlines()[-1][:200])
        warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
        found = tensor_core_instructions(ptx_path.read_text())
    return Result("cuda", name, arch, not warnings, found, warnings[0][:200] if warnings else "")


def cuda_sources() -> list[Path]:
    """The .cu files of the source checkout this package runs from (empty outside a checkout)."""
    return sorted(CUDA_DIR.glob("*.cu"))


def run_checks(archs: list[int], skip_triton: bool, skip_cuda: bool, jobs: int) -> list[Result]:
    """Triton kernels one after another (triton.compile is not thread-safe), nvcc in parallel."""
    results = [] if skip_triton else [compile_triton(t, a) for t in triton_targets() for a in archs]
    if skip_cuda:
        return results
    nvcc = find_nvcc()
    if nvcc is None:
        return results + [Result("cuda", "nvcc", 0, False, "-", "nvcc not found (set CUDA_HOME or pass --skip-cuda)")]
    if not cuda_sources():
        return results + [Result("cuda", "csrc/cuda", 0, False, "-",
                                 f"no .cu sources at {CUDA_DIR}: the CUDA check needs a source checkout "
                                 "(pip install --no-build-isolation -e .) or --skip-cuda")]
    jobs_list = [(s, a) for s in cuda_sources() for a in archs]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return results + list(pool.map(lambda job: compile_cuda(nvcc, *job), jobs_list))


def format_table(results: list[Result]) -> str:
    header = f"{'kind':<7} {'kernel':<48} {'arch':<6} {'ok':<4} {'tensor cores':<16} detail"
    rows = [
        f"{r.kind:<7} {r.name:<48} sm_{r.arch:<3} {'yes' if r.ok else 'NO':<4} {r.tensor_cores:<16} {r.detail}"
        for r in results
    ]
    return "\n".join([header, "-" * len(header)] + rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atbsn_kernels.compile_check", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, action="append", help="compute capability x10 (repeatable; default 80 and 90)")
    parser.add_argument("--skip-triton", action="store_true", help="do not compile the Triton kernels")
    parser.add_argument("--skip-cuda", action="store_true", help="do not compile the .cu sources")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compilations")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1" and not args.skip_triton:
        print("compile_check: unset TRITON_INTERPRET: interpreted kernels cannot be compiled", file=sys.stderr)
        return 2
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    results = run_checks(args.arch or [80, 90], args.skip_triton, args.skip_cuda, args.jobs)
    print(format_table(results))
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} compiled, {len(failed)} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
