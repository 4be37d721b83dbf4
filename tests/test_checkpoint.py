"""Loading official checkpoints in every key layout, and the official student initialisation."""

import pytest
import torch

from atbsn.models import ATBSN, NBSN, Distilled, init_student_from_teacher, load_official, model_from_state_dict
from atbsn.models.official_style import OfficialStyleATBSN, OfficialStyleNBSN


def official_pair(seed=0):
    torch.manual_seed(seed)
    return OfficialStyleATBSN(mid=8), OfficialStyleNBSN(mid=8)


def image():
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 255


def save(tmp_path, state_dict, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(state_dict, path)
    return path


@pytest.mark.parametrize("prefix", ["", "module."])
def test_loads_an_atbsn_checkpoint_and_gives_official_outputs(tmp_path, prefix):
    teacher, _ = official_pair()
    path = save(tmp_path, {prefix + k: v for k, v in teacher.state_dict().items()})
    model = load_official(path, backend="cpu")
    assert isinstance(model, ATBSN) and model.mid == 8 and model.backend == "cpu"
    with torch.no_grad():
        assert torch.allclose(model(image(), 3), teacher(image(), 3), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_loads_a_student_checkpoint(tmp_path, prefix):
    _, student = official_pair()
    model = load_official(save(tmp_path, {prefix + k: v for k, v in student.state_dict().items()}))
    assert isinstance(model, NBSN)
    with torch.no_grad():
        assert torch.allclose(model(image()), student(image()), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_loads_a_distilled_checkpoint_as_student_and_teacher(tmp_path, prefix):
    teacher, student = official_pair()
    state = {f"{prefix}nbsn.{k}": v for k, v in student.state_dict().items()}
    state.update({f"{prefix}bsn.{k}": v for k, v in teacher.state_dict().items()})
    loaded = load_official(save(tmp_path, state))
    assert isinstance(loaded, Distilled)
    with torch.no_grad():
        assert torch.allclose(loaded.student(image()), student(image()), rtol=1e-5, atol=1e-3)
        assert torch.allclose(loaded.teacher(image(), 9), teacher(image(), 9), rtol=1e-5, atol=1e-3)


def test_default_widths_are_read_off_the_shapes():
    model = model_from_state_dict(OfficialStyleATBSN().state_dict())
    assert isinstance(model, ATBSN) and model.mid == 48


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_official(tmp_path / "nope.pth")


def test_corrupt_file_is_reported(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_official(path)


def test_truncated_file_is_reported(tmp_path):
    teacher, _ = official_pair()
    path = save(tmp_path, teacher.state_dict())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_official(path)


def test_foreign_state_dict_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not an AT-BSN checkpoint"):
        load_official(save(tmp_path, {"conv.weight": torch.zeros(3, 3, 3, 3)}))
    with pytest.raises(ValueError, match="state dict"):
        load_official(save(tmp_path, {"epoch": 3}))


def test_a_checkpoint_missing_a_key_fails_loudly(tmp_path):
    teacher, _ = official_pair()
    state = teacher.state_dict()
    del state["unet.dec2.conv1.conv.bias"]
    with pytest.raises(RuntimeError, match="dec2.conv1.conv.bias"):
        load_official(save(tmp_path, state))


def test_student_is_initialised_from_the_teacher_as_the_official_code_does():
    torch.manual_seed(0)
    teacher, student = ATBSN(mid=8), NBSN(mid=8)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    copied = init_student_from_teacher(student, teacher)
    teacher_state, student_state = teacher.state_dict(), student.state_dict()
    assert copied and all(k.startswith("unet.") and not k.startswith("unet.dec1.") for k in copied)
    assert len(copied) == len([k for k in teacher_state if k.startswith("unet.") and not k.startswith("unet.dec1.")])
    for key, value in student_state.items():
        expected = teacher_state[key] if key in copied else before[key]
        assert torch.equal(value, expected), key


def test_student_init_checks_its_arguments():
    with pytest.raises(TypeError, match="NBSN, ATBSN"):
        init_student_from_teacher(ATBSN(mid=8), NBSN(mid=8))
    with pytest.raises(ValueError, match="width"):
        init_student_from_teacher(NBSN(mid=8), ATBSN(mid=16))
