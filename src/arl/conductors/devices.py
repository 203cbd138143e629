"""Where a central agent's torch components run (``inference.device``, ``learner.device``)."""

from __future__ import annotations


def check_device(device: str) -> None:
    """Raise a ``ValueError`` that says what to do if ``device`` cannot be used here.

    "cpu" needs nothing (and imports nothing); any other device imports torch, which
    only the processes that host such components do."""
    if device == "cpu":
        return
    import torch  # only where a device other than the CPU is asked for

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device {device!r} is not a torch device: {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r}: torch {torch.__version__} sees no CUDA GPU on this machine; use device: cpu, "
                "or install torch's CUDA build (README, 'torch and GPUs')"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine; use device: cpu")
