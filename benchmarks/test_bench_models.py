"""Model-level benchmarks (docs/design.md, "What fast means"), each timed interleaved beside the
official model with the same weights: the AT-BSN training step (hole 9), inference at all seven
teacher hole sizes, the distillation step (7 teachers + student) and student inference.

The baseline is the official AT-BSN code itself when ``--official-atbsn PATH`` names its
``codes/models/modules/arch_atbsn.py`` (imported as it is from outside the repository; also timed
in channels-last and under ``torch.compile`` for the training step); without it, the
official-style eager rewrite in ``atbsn.models.official_style`` stands in, and the report says so.
"""

import pytest
import torch
from bench_compare import Provider
from bench_device import device, synchronize
from bench_models import adam_step, l1, load_official_atbsn, noisy

from atbsn.models import ATBSN, NBSN, TEACHER_HOLES, init_student_from_teacher
from atbsn.models.official_style import OfficialStyleATBSN, OfficialStyleNBSN

# bench size -> (train/distill batch and side, inference side)
SHAPES = {"smoke": (1, 32, 32), "quick": (4, 128, 256), "full": (4, 128, 256)}
OFFICIAL_CODE = "official AT-BSN code"
OFFICIAL_STYLE = "official-style eager"
pytestmark = pytest.mark.model_level


@pytest.fixture(scope="session")
def official_module(request):
    """The official ``arch_atbsn`` module, or None without ``--official-atbsn``."""
    path = request.config.getoption("--official-atbsn")
    if path is None:
        return None
    try:
        return load_official_atbsn(path)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def teachers(official_module):
    """{name: ATBSN} with the same weights: ours (fused), the official-style rewrite and, when
    given, the official code."""
    torch.manual_seed(0)
    models = {"fused": ATBSN(), OFFICIAL_STYLE: OfficialStyleATBSN()}
    if official_module is not None:
        models[OFFICIAL_CODE] = official_module.ATBSN()
    for model in models.values():
        model.load_state_dict(models["fused"].state_dict())
    return {name: model.to(device()) for name, model in models.items()}


def students(teacher, official_module):
    """{name: NBSN}: ours initialised from ``teacher`` as the official code does, the others loaded from it."""
    models = {"fused": NBSN(), OFFICIAL_STYLE: OfficialStyleNBSN()}
    init_student_from_teacher(models["fused"], teacher)
    if official_module is not None:
        models[OFFICIAL_CODE] = official_module.N_BSN()
    for model in models.values():
        model.load_state_dict(models["fused"].state_dict())
    return {name: model.to(device()) for name, model in models.items()}


def baseline(models) -> str:
    return OFFICIAL_CODE if OFFICIAL_CODE in models else OFFICIAL_STYLE


def roles(models) -> dict[str, str]:
    """Role of each model's provider: the baseline is the reference, our model the fast path."""
    base = baseline(models)
    return {name: "reference" if name == base else "fast" if name.startswith("fused") else "alternative"
            for name in models}


def test_atbsn_train_step(compare, bench_size, official_module):
    n, side, _ = SHAPES[bench_size]
    x = noisy(n, side)
    models = teachers(official_module)
    with torch.no_grad():
        losses = {name: l1(model(x, 9), x).item() for name, model in models.items()}
    base = baseline(models)
    assert abs(losses["fused"] - losses[base]) <= 1e-4 * abs(losses[base]), losses
    if official_module is not None:
        for name, layout in (("official code, channels-last", torch.channels_last),
                             ("official code, torch.compile", torch.contiguous_format)):
            model = official_module.ATBSN()
            model.load_state_dict(models["fused"].state_dict())
            models[name] = model.to(device(), memory_format=layout)
        models["official code, torch.compile"] = torch.compile(models["official code, torch.compile"])
    inputs = {name: x.contiguous(memory_format=torch.channels_last) if "channels-last" in name else x
              for name in models}
    providers = {
        name: Provider(adam_step(model.parameters(), lambda m=model, i=inputs[name]: l1(m(i, 9), i)), role,
                       {"images": n}, {"first_loss": losses.get(name)})
        for (name, model), role in zip(models.items(), roles(models).values())
    }
    compare(f"ATBSN train step {n}x3x{side}x{side} hole 9 (fwd+L1+bwd+Adam)", providers, baseline=base)


def autocast_bf16(compute_loss):
    """``compute_loss`` with its forward and loss under bf16 autocast (``precision: bf16``)."""

    def run():
        with torch.autocast(device(), dtype=torch.bfloat16):
            return compute_loss()

    return run


def test_atbsn_train_step_bf16(compare, bench_size, official_module):
    """The training step under bf16 autocast (AMX / AVX512-BF16 where the CPU has them): ours and the
    official model both autocast, each beside its fp32 step; each provider trains its own copy."""
    n, side, _ = SHAPES[bench_size]
    x = noisy(n, side)
    models = teachers(official_module)
    base = baseline(models)
    reference = f"{base}, bf16 autocast"
    providers = {}
    for name, bf16 in (("fused", True), (base, True), ("fused", False), (base, False)):
        model = type(models[name])()
        model.load_state_dict(models[name].state_dict())
        model.to(device())
        label = f"{name}, {'bf16 autocast' if bf16 else 'fp32'}"
        role = "fast" if label == "fused, bf16 autocast" else "reference" if label == reference else "alternative"
        compute_loss = (lambda m=model: l1(m(x, 9), x))
        step = adam_step(model.parameters(), autocast_bf16(compute_loss) if bf16 else compute_loss)
        providers[label] = Provider(step, role, {"images": n})
    compare(f"ATBSN train step {n}x3x{side}x{side} hole 9, bf16 autocast (fwd+L1+bwd+Adam)", providers,
            baseline=reference)


def test_atbsn_seven_hole_inference(compare, bench_size, official_module):
    side = SHAPES[bench_size][2]
    x = noisy(1, side)
    models = teachers(official_module)
    base = baseline(models)

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()
            synchronize()

        return run

    providers = {
        base: Provider(no_grad(lambda: [models[base](x, hole) for hole in TEACHER_HOLES]), "reference", {"images": 1}),
        "fused, 7 passes": Provider(no_grad(lambda: [models["fused"](x, hole) for hole in TEACHER_HOLES]), "fast",
                                    {"images": 1}),
        "fused, shared trunk": Provider(no_grad(lambda: models["fused"].forward_holes(x, TEACHER_HOLES)), "fast",
                                        {"images": 1}),
    }
    compare(f"ATBSN inference at holes {TEACHER_HOLES} 1x3x{side}x{side}", providers, baseline=base)


def distill_loss(teacher_outputs, student, x):
    """Teachers (no grad), then the sum over holes of L1(student(x), teacher output)."""
    with torch.no_grad():
        targets = teacher_outputs(x)
    out = student(x)
    return sum(l1(out, target) for target in targets)


def test_distillation_step(compare, bench_size, official_module):
    n, side, _ = SHAPES[bench_size]
    x = noisy(n, side)
    models = teachers(official_module)
    pupils = students(models["fused"], official_module)
    base = baseline(models)
    official = models[base]
    providers = {
        base: Provider(adam_step(pupils[base].parameters(), lambda: distill_loss(
            lambda img: [official(img, hole) for hole in TEACHER_HOLES], pupils[base], x)), "reference", {"images": n}),
        "fused, shared trunk": Provider(adam_step(pupils["fused"].parameters(), lambda: distill_loss(
            lambda img: models["fused"].forward_holes(img, TEACHER_HOLES), pupils["fused"], x)), "fast",
            {"images": n}),
    }
    compare(f"distillation step {n}x3x{side}x{side}, 7 teachers + NBSN (fwd+bwd+Adam)", providers, baseline=base)


def test_nbsn_inference(compare, bench_size, official_module):
    side = SHAPES[bench_size][2]
    x = noisy(1, side)
    pupils = students(teachers(official_module)["fused"], official_module)

    def infer(model):
        def run():
            with torch.no_grad():
                model(x)
            synchronize()

        return run

    providers = {name: Provider(infer(model), role, {"images": 1})
                 for (name, model), role in zip(pupils.items(), roles(pupils).values())}
    compare(f"NBSN inference 1x3x{side}x{side}", providers, baseline=baseline(pupils))
