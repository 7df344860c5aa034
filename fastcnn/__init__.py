"""fastcnn: a compiled convolutional-network engine you can read end to end."""

from . import data, functional, init, nn, onnx, optim
from .backends.cpu.threads import get_num_threads, set_num_threads
from .backends import to_device, to_host
from .gradients import GradcheckError, gradcheck
from .model import Input, Model, Sequential, load

__version__ = "0.1.0"
