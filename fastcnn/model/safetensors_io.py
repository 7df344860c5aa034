"""safetensors files: a model's weights under PyTorch's names, in the format Hugging Face
uses to ship weights without pickle (a JSON header of names, dtypes, shapes and byte
ranges, then the raw bytes). Needs the ``safetensors`` package.

    # in PyTorch:  safetensors.torch.save_file(torch_model.state_dict(), "w.safetensors")
    model.load_state_dict(fastcnn.load_safetensors("w.safetensors"))   # same architecture
    model.save_safetensors("w.safetensors")    # and back: torch_model.load_state_dict(
                                               #   safetensors.torch.load_file(...))

A .pt / .pth checkpoint is a pickle, which runs code of the file's choosing when read,
so it is refused with the one line that converts it. The safetensors package checks the
header against the file (offsets inside it, sizes matching dtypes and shapes) before
making an array, so a file costs no more memory than its size.
"""

import os

import numpy as np

from .io import ModelFileError, _create_beside

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt")
CONVERT = ("convert it once where PyTorch is installed: import torch, safetensors.torch; "
           "safetensors.torch.save_file(torch.load(PATH, weights_only=True), "
           "'weights.safetensors') (or safetensors.torch.save_file(model.state_dict(), ...))")


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError as e:
        raise ImportError("safetensors files need the safetensors package: pip install "
                          "\"fastcnn[safetensors]\" (or pip install safetensors)") from e
    return safetensors.numpy


def load_safetensors(path):
    """{name: NumPy array} of a .safetensors file, for model.load_state_dict (bfloat16
    arrays as float32). PyTorch checkpoints (.pt, .pth: pickles) are refused with how
    to convert them; a file that is not safetensors is a ModelFileError (a ValueError)."""
    path = os.fspath(path)
    with open(path, "rb") as f:          # a missing file: FileNotFoundError, as open's
        start = f.read(9)
    header = start[8:9] == b"{"         # safetensors: the header's length, then its JSON
    if path.lower().endswith(PICKLE_SUFFIXES) or not header and (
            start[:1] == b"\x80" or start[:4] == b"PK\x03\x04"):
        raise ModelFileError(f"{path!r} looks like a PyTorch checkpoint (a pickle, or a zip "
                             f"of one), which fastcnn does not read: unpickling runs code "
                             f"from the file. To use its weights, "
                             f"{CONVERT.replace('PATH', repr(path))}")
    st = _safetensors()
    try:
        import ml_dtypes  # noqa: F401  (NumPy's bfloat16, if installed: onnx brings it)
    except ImportError:
        pass
    try:
        arrays = st.load_file(path)
    except Exception as e:          # the package's SafetensorError, or NumPy's on a dtype
        raise ModelFileError(f"{path!r} is not a readable safetensors file: {e} (bfloat16 "
                             f"weights need the ml_dtypes package, or converting to float32 "
                             f"first: {{k: v.float() for k, v in ...}})") from None
    return {k: v.astype(np.float32) if v.dtype.name == "bfloat16" else v
            for k, v in arrays.items()}


def save_safetensors(model, path, metadata=None):
    """model.state_dict() (PyTorch's names and shapes) to a .safetensors file at path,
    through a temporary file beside it; metadata: a dict of strings for the header
    (format "pt", which Hugging Face's tools look for, unless given)."""
    st = _safetensors()
    arrays = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    data = st.save(arrays, metadata={"format": "pt", **(metadata or {})})
    path = os.fspath(path)
    tmp, fd = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
