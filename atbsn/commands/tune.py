"""`atbsn tune`: measure the backends of every fused op of a model at one input shape, ahead of a
run, so that the run's first step does not pay for it (the choices go to the tuning cache)."""

from __future__ import annotations

import argparse
import time

from atbsn.errors import InputError

def _model(name: str, mid: int | None, channels: int):
    from atbsn.models import ATBSN, NBSN
    from atbsn.models.dbsn import DBSN

    if name == "dbsn":
        return DBSN(channels, channels, **({"base_ch": mid} if mid else {})), ()
    model = (ATBSN if name == "atbsn" else NBSN)(channels, **({"mid": mid} if mid else {}))
    return model, ((9,) if name == "atbsn" else ())  # the hole a training step uses


def run(args: argparse.Namespace) -> int:
    import torch

    from atbsn_kernels.tuning import AUTOTUNE_ENV, TUNER, autotune_enabled, cache_path, tune

    if not autotune_enabled():
        raise InputError(f"{AUTOTUNE_ENV}=0 turns measuring off; unset it to tune")
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"--device {args.device!r} is not usable here ({err})") from err
    model, extra = _model(args.model, args.mid, args.shape[1])
    model = model.to(device).train(not args.inference)
    x = torch.rand(args.shape, device=device) * 255
    before = set(TUNER.decisions(device))
    start = time.perf_counter()
    decisions = tune(model, x, *extra, backward=not args.inference)
    seconds = time.perf_counter() - start
    new = {sig: d for sig, d in decisions.items() if sig not in before}
    for signature, d in new.items():
        times = ", ".join(f"{name} {ms:.2f} ms" for name, ms in sorted(d.median_ms.items(), key=lambda kv: kv[1]))
        print(f"{d.choice:<8} {signature}  [{times}]")
    print(f"tune: {len(new)} new choice(s), {len(decisions) - len(new)} already known, in {seconds:.1f} s; "
          f"cache {cache_path()}")
    return 0
