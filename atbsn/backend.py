"""The kernel backend a command asked for, checked before any work starts."""

from __future__ import annotations

import torch

from atbsn.errors import InputError
from atbsn_kernels.backends import BackendUnavailableError, resolve_backend


def require_backend(backend: str, device: torch.device, source: str = "--backend") -> None:
    """InputError unless `backend` (or ``ATBSN_BACKEND`` for "auto") names a backend that runs on `device`.

    `source` names where the value came from in the message (``--backend``, ``config key 'backend'``).
    """
    try:
        resolve_backend(backend, device, source)
    except (ValueError, BackendUnavailableError) as error:
        raise InputError(str(error)) from None
