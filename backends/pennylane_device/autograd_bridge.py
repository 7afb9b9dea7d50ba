"""Backprop for autograd (``pennylane.numpy``) parameters through the torch graph.

A tape whose parameters are autograd boxes runs as one autograd primitive of its trainable parameters
flattened into one real vector: the primitive evaluates the device's torch computation, and its
vector-Jacobian product is that computation's ``torch.autograd.grad``, itself such a primitive (with
``create_graph``), so every order of derivative autograd asks for is torch's. Complex results (a state)
cross the boundary as their real and imaginary parts, so no complex convention has to be matched.
"""

from __future__ import annotations

from collections.abc import Callable

import autograd.numpy as anp
import numpy as np
import pennylane as qml
import torch
from autograd.extend import defvjp_argnum, primitive
from autograd.tracer import Box

#: a real 1-D torch function of real tensors
TorchFunction = Callable[..., torch.Tensor]


def is_traced(value) -> bool:
    """Whether ``value`` is being differentiated by autograd."""
    return isinstance(value, Box)


def torch_primitive(fn: TorchFunction):
    """``fn`` as an autograd primitive of numpy arrays, differentiable to any order by torch."""

    @primitive
    def call(*arrays):
        inputs = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
        with torch.enable_grad():
            return fn(*inputs).detach().numpy()

    def make_vjp(argnum, ans, args, kwargs):
        def vjp(cotangent):
            def grad(*tensors):
                *inputs, dy = tensors
                (out,) = torch.autograd.grad(fn(*inputs), inputs[argnum], dy, create_graph=True, allow_unused=True)
                return torch.zeros_like(inputs[argnum]) if out is None else out

            return torch_primitive(grad)(*args, cotangent)

        return vjp

    defvjp_argnum(call, make_vjp)
    return call


def run(tape, execute: Callable):
    """``execute(tape)`` (torch results) for a tape whose traced parameters are autograd boxes: the result in
    autograd arrays, differentiable through the torch graph."""
    params = tape.get_parameters(trainable_only=False)
    traced = [i for i, p in enumerate(params) if is_traced(p)]
    shapes = [np.shape(params[i]) for i in traced]
    sizes = [int(np.prod(shape)) for shape in shapes]
    layout: list = []  # (shape, complex?) of each result, recorded by the forward pass

    def flat_result(flat: torch.Tensor) -> torch.Tensor:
        values = [part.reshape(shape) for part, shape in zip(flat.split(sizes), shapes)]
        result = execute(tape.bind_new_parameters(values, traced))
        leaves = result if isinstance(result, tuple) else (result,)
        layout[:] = [(tuple(leaf.shape), leaf.is_complex()) for leaf in leaves]
        layout.append(isinstance(result, tuple))
        parts = [(leaf.real, leaf.imag) if leaf.is_complex() else (leaf,) for leaf in leaves]
        return torch.cat([p.reshape(-1).to(torch.float64) for group in parts for p in group])

    x = anp.concatenate([anp.reshape(params[i], (-1,)) for i in traced])
    flat = torch_primitive(flat_result)(x)
    *leaves, as_tuple = layout
    out, start = [], 0
    for shape, is_complex in leaves:
        size = int(np.prod(shape))
        value = anp.reshape(flat[start : start + size], shape)
        start += size
        if is_complex:
            value = value + 1j * anp.reshape(flat[start : start + size], shape)
            start += size
        out.append(value)
    return tuple(out) if as_tuple else out[0]


def interface_of(tape) -> str:
    """The tape's parameters' interface (``torch``, ``autograd``, ``numpy``, …)."""
    return qml.math.get_interface(*tape.get_parameters(trainable_only=False))
