"""PD by AP-BSN's mosaic against PD by dilation, on one DBSN with the same weights.

- ``pd-mosaic`` (reference, what AP-BSN does): zero-pad H and W up to a multiple of r, pixel-shuffle
  into a mosaic of sub-images with ``PD_PAD`` zeros around each, run the pd=1 network on the
  mosaic, shuffle back, crop.
- ``dilation``: the same network with ``pd = r`` (every conv dilated by r) on the image as it is.

Inference (no grad) at r = 2 and 5, and a training step (L1 to the noisy input, forward and
backward) at AP-BSN's training factor r = 5, timed interleaved. Peak memory of one warm call of
each goes into its provider record: ``peak_tensor_mib`` (live tensor bytes through torch's CPU allocator, from the
profiler's allocation events, kernel-internal tensors included) and ``peak_rss_mib`` (growth of
the process's peak resident memory, which also counts the C++ kernels' own scratch buffers);
on a GPU, ``peak_cuda_mib`` from torch.cuda.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pytest
import torch
import torch.nn.functional as F
from bench_compare import Provider
from torch._C._profiler import _EventType

from atbsn.models.dbsn import DBSN
from atbsn_kernels import reference

PD_PAD = 2  # AP-BSN's pd_pad: zeros around every sub-image of the mosaic
# bench size -> (batch, side, base channels, residual blocks per branch)
INFER_SIZES = {"smoke": (1, 16, 8, 1), "quick": (1, 256, 64, 9), "full": (1, 256, 128, 9)}
TRAIN_SIZES = {"smoke": (1, 15, 8, 1), "quick": (1, 120, 64, 9), "full": (4, 120, 128, 9)}
MIB = 2.0 ** 20
pytestmark = pytest.mark.model_level


def pd_mosaic(model: DBSN, x: torch.Tensor, r: int) -> torch.Tensor:
    """AP-BSN's PD forward through the pd=1 ``model``: ``[N, C, H, W] -> [N, C, H, W]``."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (0, -width % r, 0, -height % r))
    mosaic = reference.pd_downsample(padded, r, PD_PAD)
    return reference.pd_upsample(model(mosaic), r, PD_PAD)[..., :height, :width]


def _allocations(nodes):
    for node in nodes:
        if node.tag == _EventType.Allocation:
            yield node.extra_fields.total_allocated
        yield from _allocations(node.children)


def peak_tensor_bytes(fn) -> int:
    """Peak growth of live tensor bytes in torch's CPU allocator while ``fn()`` runs."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(0, *_allocations(prof.profiler.kineto_results.experimental_event_tree()))


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key + ":"))


def peak_rss_bytes(fn) -> int | None:
    """Peak growth of resident memory while ``fn()`` runs (Linux; None elsewhere): free heap is
    handed back first (malloc_trim), then the kernel's high-water mark is reset (clear_refs 5)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None or not os.path.exists("/proc/self/clear_refs"):
        return None
    ctypes.CDLL(libc_name).malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _proc_status("VmRSS")
    fn()
    return _proc_status("VmHWM") - before


def peak_memory(fn, device: str) -> dict:
    """Peak memory of one call of ``fn``, in MiB (see the module docstring)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return {"peak_cuda_mib": (torch.cuda.max_memory_allocated() - before) / MIB}
    rss = peak_rss_bytes(fn)
    return {"peak_tensor_mib": peak_tensor_bytes(fn) / MIB, "peak_rss_mib": None if rss is None else rss / MIB}


def dbsn_pair(sizes, bench_size, r):
    """(model at pd=1, model at pd=r) with the same weights, the input and the device."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch, side, channels, blocks = sizes[bench_size]
    torch.manual_seed(0)
    mosaic_model = DBSN(3, 3, channels, blocks).to(device)
    dilated = DBSN(3, 3, channels, blocks).to(device)
    dilated.load_state_dict(mosaic_model.state_dict())
    dilated.pd = r
    x = torch.rand(batch, 3, side, side, device=device)
    return mosaic_model, dilated, x, device


def synced(fn, device):
    def run():
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def providers_with_memory(steps: dict, device: str, images: int) -> dict[str, Provider]:
    """pd-mosaic (reference) and dilation providers, each with its peak memory measured first."""
    return {name: Provider(step, "reference" if name == "pd-mosaic" else "fast", {"images": images},
                           peak_memory(step, device)) for name, step in steps.items()}


@pytest.mark.parametrize("r", [2, 5])
def test_dbsn_inference_pd(compare, bench_size, r):
    mosaic_model, dilated, x, device = dbsn_pair(INFER_SIZES, bench_size, r)
    batch, side, channels, blocks = INFER_SIZES[bench_size]

    def no_grad(fn):
        return synced(torch.no_grad()(fn), device)

    steps = {"pd-mosaic": no_grad(lambda: pd_mosaic(mosaic_model, x, r)), "dilation": no_grad(lambda: dilated(x))}
    compare(f"DBSN inference {batch}x3x{side}x{side} C={channels} M={blocks} PD r={r}",
            providers_with_memory(steps, device, batch))


def test_dbsn_train_step_pd5(compare, bench_size):
    mosaic_model, dilated, x, device = dbsn_pair(TRAIN_SIZES, bench_size, 5)
    batch, side, channels, blocks = TRAIN_SIZES[bench_size]

    def train_step(model, forward):
        def run():
            model.zero_grad(set_to_none=True)
            F.l1_loss(forward(x), x).backward()

        return synced(run, device)

    steps = {"pd-mosaic": train_step(mosaic_model, lambda t: pd_mosaic(mosaic_model, t, 5)),
             "dilation": train_step(dilated, dilated)}
    compare(f"DBSN train step {batch}x3x{side}x{side} C={channels} M={blocks} PD r=5",
            providers_with_memory(steps, device, batch))
