"""Weight files: save a model as safetensors (optionally fp16) and load any weight file we know
(safetensors, an `atbsn train`/`distill` checkpoint, or an official .pth) into a model."""

from __future__ import annotations

from pathlib import Path

import torch

from atbsn.errors import InputError
from atbsn.models.atbsn import ATBSN, NBSN
from atbsn.models.checkpoint import Distilled, model_from_state_dict

__all__ = ["save_weights", "load_model", "read_torch_file", "RUN_CHECKPOINT_FORMAT"]

# The "format" entry of the checkpoints `atbsn train` and `atbsn distill` write.
RUN_CHECKPOINT_FORMAT = "atbsn-run-checkpoint/1"


def save_weights(model: ATBSN | NBSN, path: str | Path, *, half: bool = False) -> None:
    """Write `model`'s state dict to a safetensors file (fp16 if `half`), atomically."""
    from safetensors.torch import save_file

    from atbsn.data.atomic import atomic_path

    dtype = torch.float16 if half else torch.float32
    tensors = {key: value.detach().to("cpu", dtype).contiguous() for key, value in model.state_dict().items()}
    with atomic_path(path) as temporary:
        save_file(tensors, temporary, metadata={"model": type(model).__name__})


def read_torch_file(path: Path, what: str, hint: str = ""):
    """`torch.load(path, weights_only=True)`; any failure is one InputError line naming `what`, then `hint`."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}{hint}") from None
    except pickle.UnpicklingError:
        raise InputError(f"{path}: corrupt, or not a {what} (it holds something other than tensors and plain "
                         f"values){hint}") from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        first_line = str(error).partition("\n")[0]
        raise InputError(f"{path}: corrupt or unreadable {what} ({type(error).__name__}: {first_line}){hint}") from None


def _state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise InputError(f"{path}: not a readable safetensors file ({error})") from None
    loaded = read_torch_file(path, "checkpoint")
    if isinstance(loaded, dict) and loaded.get("format") == RUN_CHECKPOINT_FORMAT:
        return loaded["model"]
    return loaded


def load_model(path: str | Path, *, backend: str = "auto") -> ATBSN | NBSN | Distilled:
    """The model a weight file holds, in float32 on the CPU, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such weight file")
    state_dict = _state_dict(path)
    if isinstance(state_dict, dict):
        state_dict = {key: value.float() if isinstance(value, torch.Tensor) else value
                      for key, value in state_dict.items()}
    try:
        model = model_from_state_dict(state_dict, backend=backend)
    except (ValueError, RuntimeError) as error:
        raise InputError(f"{path}: {' '.join(str(error).split())}") from None
    return model.eval() if not isinstance(model, Distilled) else Distilled(model.student.eval(), model.teacher.eval())
