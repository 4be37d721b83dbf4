"""What the one-element-per-lane Triton kernels (``shifted_max_pool2d``, ``upsample_cat``) share:
the split of a flat lane index into tensor coordinates, and their ``COMPILE_TARGETS`` entries."""

from __future__ import annotations

import triton
import triton.language as tl  # noqa: F401 (the interpreter needs it in every module of a jit function)


@triton.jit
def split_flat(flat, C, ROWS, COLS):
    """(n, c, row, col) of flat indices over ``[N, C, ROWS, COLS]``."""
    col = flat % COLS
    rest = flat // COLS
    row = rest % ROWS
    plane = rest // ROWS
    return plane // C, plane % C, row, col


def compile_target(name: str, fn, pointers: tuple[str, ...], ints: tuple[str, ...], dtype: str, block: int) -> dict:
    """One COMPILE_TARGETS entry: pointers to ``dtype``, i32 sizes and strides, ``BLOCK`` lanes, no tensor cores."""
    signature = {**{p: f"*{dtype}" for p in pointers}, **{i: "i32" for i in ints}, "BLOCK": "constexpr"}
    return {"name": name, "fn": fn, "signature": signature, "constexprs": {"BLOCK": block}, "tensor_cores": False}
