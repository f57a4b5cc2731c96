"""A checkpoint's weights as a policy: the torch side of the checkpoint store, which never
imports torch.

``policy.pt`` is read only after its size matched the recorded one and its sha256 was checked
(``Checkpoint.payload``); it must be a ``torch.save`` archive of stored (uncompressed) entries,
so nothing unpacks larger than the file; it is loaded with ``torch.load(weights_only=True)``, so
no pickled code runs; and it must hold exactly the tensors the checkpoint's policy spec
describes, all finite. Shapes are checked on torch's ``meta`` device first, so a spec that
describes a huge network allocates nothing before it is refused. Any failure is one
``CheckpointError`` line naming the file.
"""

from __future__ import annotations

import io
import warnings
import zipfile

import torch

from harness.training.checkpoints import META_NAME, Checkpoint, CheckpointError
from harness.training.policy import MLPPolicy, PolicySpec, load_policy

POLICY_FILE = "policy.pt"
_MESSAGE_CHARS = 300  # an error quotes at most this much of what torch said


def saved_spec(checkpoint: Checkpoint) -> PolicySpec:
    """The policy spec a checkpoint records (``policy`` in its ``checkpoint.json``)."""
    try:
        return PolicySpec.from_json(checkpoint.meta["policy"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"{checkpoint.path / META_NAME}: no usable policy spec ({type(exc).__name__}: "
            f"{_short(exc)})"
        ) from None


def checkpoint_policy(checkpoint: Checkpoint, spec: PolicySpec | None = None) -> MLPPolicy:
    """The policy in the checkpoint's ``policy.pt``, built from ``spec`` (default: the spec the
    checkpoint records), or a one-line ``CheckpointError`` naming the file."""
    spec = spec if spec is not None else saved_spec(checkpoint)
    try:
        path = checkpoint.file(POLICY_FILE)
    except KeyError:
        raise CheckpointError(
            f"{checkpoint.path}: checkpoint {checkpoint.id} has no {POLICY_FILE}"
        ) from None
    data = checkpoint.payload(POLICY_FILE)
    _check_archive(path, data)
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # "copying into a meta parameter is a no-op"
            load_policy(spec, data)  # keys and shapes against the spec; nothing allocated
        policy = load_policy(spec, data)
    except Exception as exc:  # untrusted bytes: whatever torch raises means "not this policy"
        raise CheckpointError(
            f"{path}: not the weights of the checkpoint's policy ({_short(exc)})"
        ) from None
    tensors = policy.state_dict().values()
    if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
        raise CheckpointError(f"{path}: holds weights that are NaN or infinite")
    return policy


def _check_archive(path: object, data: bytes) -> None:
    """``torch.save`` writes a zip archive of stored entries: anything else is refused before
    torch reads it, and so are entries that would unpack larger than the file."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a torch.save archive ({_short(exc)})") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise CheckpointError(f"{path}: not a torch.save archive (it has compressed entries)")
    if sum(e.file_size for e in entries) > len(data):
        raise CheckpointError(f"{path}: not a torch.save archive (its entries outsize the file)")


def _short(exc: BaseException) -> str:
    """What an exception says, on one line and at most ``_MESSAGE_CHARS`` long."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = text or type(exc).__name__
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."
