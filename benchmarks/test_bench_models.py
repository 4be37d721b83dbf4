"""Model-level benchmarks of DESIGN.md 5, each beside the official-style eager model with the same
weights (``atbsn.models.official_style``): AT-BSN training step (hole 9), inference at all seven
teacher hole sizes, the distillation step (7 teachers + student), and student inference."""

import pytest
import torch

from atbsn.models import ATBSN, NBSN, TEACHER_HOLES, init_student_from_teacher
from atbsn.models.official_style import OfficialStyleATBSN, OfficialStyleNBSN

# bench size -> (train/distill batch and side, inference side)
SHAPES = {"smoke": (1, 32, 32), "quick": (4, 128, 256), "full": (4, 128, 256)}
OFFICIAL = "official-style eager"
pytestmark = pytest.mark.model_level


def device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def noisy(n, side):
    return (torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0)) * 255).to(device())


def teachers():
    """(fused ATBSN, official-style ATBSN) with the same weights."""
    torch.manual_seed(0)
    fast = ATBSN().to(device())
    official = OfficialStyleATBSN().to(device())
    official.load_state_dict(fast.state_dict())
    return fast, official


def students(teacher):
    """(fused NBSN, official-style NBSN), both initialised from ``teacher`` as the official code does."""
    fast = NBSN().to(device())
    init_student_from_teacher(fast, teacher)
    official = OfficialStyleNBSN().to(device())
    official.load_state_dict(fast.state_dict())
    return fast, official


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def l1(a, b):
    return (a - b).abs().mean()


def adam_step(params, compute_loss):
    """One optimiser step: zero grads, ``compute_loss()``, backward, Adam (lr 3e-4); returns the loss."""
    opt = torch.optim.Adam(params, 3e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = compute_loss()
        loss.backward()
        opt.step()
        synchronize()
        return loss.item()

    return step


@pytest.mark.parametrize("provider", [OFFICIAL, "fused"])
def test_atbsn_train_step(timed, benchmark, bench_size, provider):
    n, side, _ = SHAPES[bench_size]
    x = noisy(n, side)
    fast, official = teachers()
    with torch.no_grad():
        loss_fast, loss_official = l1(fast(x, 9), x).item(), l1(official(x, 9), x).item()
    assert abs(loss_fast - loss_official) <= 1e-4 * abs(loss_official)
    benchmark.group = f"ATBSN train step {n}x3x{side}x{side} hole 9 (fwd+L1+bwd+Adam)"
    benchmark.extra_info.update(images=n, first_loss=loss_fast if provider == "fused" else loss_official)
    model = fast if provider == "fused" else official
    timed(adam_step(model.parameters(), lambda: l1(model(x, 9), x)), provider, reference=provider == OFFICIAL)


def seven_passes(model, x):
    return lambda: [model(x, hole) for hole in TEACHER_HOLES]


@pytest.mark.parametrize("provider", [OFFICIAL, "fused, 7 passes", "fused, shared trunk"])
def test_atbsn_seven_hole_inference(timed, benchmark, bench_size, provider):
    side = SHAPES[bench_size][2]
    x = noisy(1, side)
    fast, official = teachers()
    run = {OFFICIAL: seven_passes(official, x), "fused, 7 passes": seven_passes(fast, x),
           "fused, shared trunk": lambda: fast.forward_holes(x, TEACHER_HOLES)}[provider]

    def infer():
        with torch.no_grad():
            run()
        synchronize()

    benchmark.group = f"ATBSN inference at holes {TEACHER_HOLES} 1x3x{side}x{side}"
    benchmark.extra_info.update(images=1)
    timed(infer, provider, reference=provider == OFFICIAL)


def distill_loss(teacher_outputs, student, x):
    """Teachers (no grad), then the sum over holes of L1(student(x), teacher output)."""
    with torch.no_grad():
        targets = teacher_outputs(x)
    out = student(x)
    return sum(l1(out, target) for target in targets)


@pytest.mark.parametrize("provider", [OFFICIAL, "fused, shared trunk"])
def test_distillation_step(timed, benchmark, bench_size, provider):
    n, side, _ = SHAPES[bench_size]
    x = noisy(n, side)
    fast, official = teachers()
    fast_student, official_student = students(fast)
    if provider == OFFICIAL:
        student, teacher_outputs = official_student, lambda img: [official(img, hole) for hole in TEACHER_HOLES]
    else:
        student, teacher_outputs = fast_student, lambda img: fast.forward_holes(img, TEACHER_HOLES)
    step = adam_step(student.parameters(), lambda: distill_loss(teacher_outputs, student, x))
    benchmark.group = f"distillation step {n}x3x{side}x{side}, 7 teachers + NBSN (fwd+bwd+Adam)"
    benchmark.extra_info.update(images=n)
    timed(step, provider, reference=provider == OFFICIAL)


@pytest.mark.parametrize("provider", [OFFICIAL, "fused"])
def test_nbsn_inference(timed, benchmark, bench_size, provider):
    side = SHAPES[bench_size][2]
    x = noisy(1, side)
    fast, official = teachers()
    fast_student, official_student = students(fast)
    model = fast_student if provider == "fused" else official_student

    def infer():
        with torch.no_grad():
            model(x)
        synchronize()

    benchmark.group = f"NBSN inference 1x3x{side}x{side}"
    benchmark.extra_info.update(images=1)
    timed(infer, provider, reference=provider == OFFICIAL)
