"""fastcnn: a compiled convolutional-network engine you can read end to end."""

from . import data, functional, init, nn, onnx, optim, viz
from .backends.cpu.threads import get_num_threads, set_num_threads
from .backends import to_device, to_host
from .gradients import GradcheckError, gradcheck
from .model import Input, Model, Sequential, load
from .model.safetensors_io import load_safetensors

__version__ = "0.1.0"
