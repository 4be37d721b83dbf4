"""Build script for atbsn: the Python packages plus the C++/CUDA extension ``atbsn_kernels._C``.

The extension is compiled against the torch that is already installed, so install with
``pip install --no-build-isolation -e .`` (see pyproject.toml for why).

Environment switches:
  ATBSN_SKIP_EXT=1      build no extension at all (pure Python: reference and Triton backends only)
  ATBSN_FORCE_CUDA=1    compile the CUDA sources even if no GPU / CUDA torch is detected
  ATBSN_SKIP_CUDA=1     never compile the CUDA sources
  TORCH_CUDA_ARCH_LIST  CUDA archs, e.g. "8.0;9.0" (default here: "8.0;9.0")
  MAX_JOBS              parallel compile jobs for ninja (default: min(cores, memory / 4 GiB))
  ATBSN_DEBUG=1         compile with -O0 -g
"""

import glob
import os
import re
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def read_version(name="__version__"):
    """A version string of atbsn_kernels/_version.py (the package's, or MIN_TORCH / MIN_TRITON)."""
    with open(os.path.join(ROOT, "atbsn_kernels", "_version.py")) as f:
        return re.search(name + r' = "([^"]+)"', f.read()).group(1)


def env_flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def default_max_jobs():
    cores = os.cpu_count() or 1
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 8
    return max(1, min(cores, int(mem_gib // 4)))


def cuda_decision(cuda_home, torch_cuda_version):
    """Return (build_cuda, reason)."""
    if env_flag("ATBSN_SKIP_CUDA"):
        return False, "ATBSN_SKIP_CUDA=1"
    if env_flag("ATBSN_FORCE_CUDA"):
        if cuda_home is None:
            sys.exit("setup.py: ATBSN_FORCE_CUDA=1 but no CUDA toolkit was found (set CUDA_HOME)")
        return True, "ATBSN_FORCE_CUDA=1"
    if cuda_home is None:
        return False, "no CUDA toolkit found (set CUDA_HOME)"
    if torch_cuda_version is None:
        return False, "the installed torch is a CPU build (torch.version.cuda is None)"
    return True, f"CUDA toolkit at {cuda_home} and torch built with CUDA {torch_cuda_version}"


def extension_modules():
    """Return (ext_modules, cmdclass); prints the build configuration."""
    if env_flag("ATBSN_SKIP_EXT"):
        print("atbsn build: ATBSN_SKIP_EXT=1, building no C++ extension")
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        sys.exit(
            "setup.py: torch must be installed before building atbsn's C++ extension, and pip must "
            "not isolate the build. Run:\n  pip install torch==2.13.0\n"
            "  pip install --no-build-isolation -e .\n(or set ATBSN_SKIP_EXT=1 for a pure-Python install)"
        )

    build_cuda, reason = cuda_decision(CUDA_HOME, torch.version.cuda)
    os.environ.setdefault("MAX_JOBS", str(default_max_jobs()))
    if build_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")

    opt = ["-O0", "-g"] if env_flag("ATBSN_DEBUG") else ["-O3"]
    # -fno-trapping-math: the kernels never read FP exception flags, so branches on a float compare
    # (the LeakyReLU gates) may be if-converted and vectorized; no value changes (no reassociation).
    cxx_flags = opt + ["-fopenmp", "-std=c++20", "-fno-trapping-math"]
    sources = sorted(glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    sources += sorted(glob.glob(os.path.join("csrc", "ops", "*.cpp")))
    define_macros = []
    kwargs = dict(extra_link_args=["-fopenmp"], include_dirs=[os.path.join(ROOT, "csrc")])
    if build_cuda:
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        define_macros.append(("WITH_CUDA", None))
        extension = CUDAExtension
        kwargs["extra_compile_args"] = {"cxx": cxx_flags, "nvcc": opt + ["-std=c++20", "--expt-relaxed-constexpr"]}
    else:
        extension = CppExtension
        kwargs["extra_compile_args"] = {"cxx": cxx_flags}

    print("atbsn build configuration:")
    print(f"  torch           {torch.__version__} (CUDA {torch.version.cuda})")
    print(f"  CUDA sources    {'yes' if build_cuda else 'no'}: {reason}")
    if build_cuda:
        print(f"  arch list       {os.environ['TORCH_CUDA_ARCH_LIST']}")
    print(f"  MAX_JOBS        {os.environ['MAX_JOBS']}")
    print(f"  flags           {' '.join(cxx_flags)}")
    print(f"  sources         {len(sources)} files")

    ext = extension("atbsn_kernels._C", sources, define_macros=define_macros, **kwargs)
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extension_modules()

setup(
    name="atbsn",
    version=read_version(),
    description="Fast asymmetric blind-spot denoising (AT-BSN) with fused Triton, C++ and CUDA kernels",
    long_description=open(os.path.join(ROOT, "README.md")).read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["atbsn", "atbsn.*", "atbsn_kernels", "atbsn_kernels.*"]),
    install_requires=[f"torch>={read_version('MIN_TORCH')}", "numpy", "scipy", "h5py", "scikit-image",
                      "opencv-python-headless", "pyyaml", "safetensors", "tqdm", "matplotlib"],
    extras_require={
        "triton": [f"triton>={read_version('MIN_TRITON')}"],
        "test": ["pytest", "pytest-benchmark", "expecttest"],
        "tensorboard": ["tensorboard"],
    },
    package_data={"atbsn": ["weights/*.safetensors"]},
    entry_points={"console_scripts": ["atbsn=atbsn.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
