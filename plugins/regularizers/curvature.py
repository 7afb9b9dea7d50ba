"""``curvature``: the Frobenius norm of the loss Hessian (eq. 10, ``L_curv``), by Hutchinson estimation."""

from __future__ import annotations

from typing import NamedTuple

import attrs
import torch

from hqf.plugins.regularizers import hessian
from hqf.registry.contracts import Regularizer, RegularizerInputs
from hqf.registry.options import flag, integer, number, one_of, option

#: how Hessian-vector products are computed (``auto``: finite differences where the run offers
#: ``RegularizerInputs.loss_at``, double backward otherwise)
METHODS = ("auto", "autograd", "finite-difference")
#: what the term differentiates through (``auto``: ``classical`` where the quantum layer has no backprop)
SCOPES = ("auto", "full", "classical")


@attrs.frozen
class CurvatureOptions:
    """``[regularizer_options.curvature]``; each option also has its flat key (``gamma_curv``, ``curvature_*``)."""

    #: γ, its weight in the loss
    weight: float = option(0.01, number(0.0), flat_key="gamma_curv")
    #: computed every this many iterations
    every: int = option(10, integer(1), flat_key="curvature_every")
    #: Rademacher probes per estimate
    probes: int = option(1, integer(1), flat_key="curvature_probes")
    #: estimated on the first this many samples of the mini-batch (None, TOML ``"all"``: all)
    batch: int | None = option(64, integer(1, optional=True), flat_key="curvature_batch", all_means_none=True)
    #: ``full`` (every parameter), ``classical`` (quantum features held constant), ``auto`` (full where
    #: the backend has backprop)
    scope: str = option("auto", one_of(*SCOPES), flat_key="curvature_scope")
    #: Hessian-vector products by ``autograd`` or ``finite-difference``; ``auto``: finite differences
    #: where the run is in complex128
    method: str = option("auto", one_of(*METHODS), flat_key="curvature_method")
    #: all probes in one batched double backward
    vectorize: bool = option(False, flag)


class _Products(NamedTuple):
    """A finite-difference evaluation: the parameters, their float64 values, the gradient as a
    function of those values, the probes ``v_k`` and the products ``H v_k``."""

    params: list
    theta: list
    gradient_at: hessian.GradientAt
    probes: list
    products: list


class CurvatureRegularizer(Regularizer):
    """``L_curv ≈ ‖∇²L_ce‖_F`` w.r.t. the trainable parameters, from Rademacher probes.

    For a probe ``v`` with independent ±1 entries, ``E‖Hv‖² = tr(H²) = ‖H‖_F²``, and the penalty is
    ``sqrt(mean_k ‖H v_k‖²)`` over ``probes`` probes drawn afresh at every call. It can be trained on:
    its gradient is ``Σ_k ∇(u_kᵀ H v_k) / (probes · penalty)`` with ``u_k = H v_k`` held fixed, a third
    derivative of the loss. The square root makes the estimate of ``‖H‖_F`` slightly biased low for
    few probes (Jensen); ``‖H‖_F²`` itself is estimated without bias by :meth:`hv_squared_norms`.

    Two ways to the same quantities (``method``):

    - ``autograd``: ``H v`` by double backward (``torch.autograd.grad`` with ``create_graph=True``),
      the gradient by one more backward through that graph; exact, but every operation of the model,
      a simulator's included, is differentiated three times;
    - ``finite-difference``: both from gradients of ``inputs.loss_at`` in float64 by central
      differences (:mod:`hqf.plugins.regularizers.hessian`; ``H v`` within ~1e-10 relative), six
      first-order gradients per probe, so a simulator needs only its first-order backward.

    When the Hessian is diagonal a single probe is exact (``‖Hv‖ = ‖H‖_F`` for every ±1 vector).

    In a run (:class:`CurvatureOptions`, flat keys in brackets): weight γ = ``weight``
    (``gamma_curv``), curve column ``curv``, computed every ``every`` (``curvature_every``) iterations
    on the first ``batch`` (``curvature_batch``) samples, ``probes``, ``method`` and ``vectorize``
    passed on, ``seed`` the run's, and ``scope`` (``curvature_scope``) choosing whether the quantum
    features are held constant (``auto``: where the quantum layer has no backprop).

    Args:
        probes: number of Rademacher probes per call (default 1).
        seed: seed of a private ``torch.Generator`` for the probes (reproducible sequence of probes).
        generator: a ``torch.Generator`` (CPU) to draw probes from instead; not with ``seed``.
            With neither, probes come from torch's global generator (``torch.manual_seed`` fixes them).
        vectorize: compute all probes in one batched double backward (``is_grads_batched``, i.e.
            ``torch.vmap``) instead of one per probe. Same probes, same values, much faster for many
            probes; needs a model whose every op has a vmap rule (the torch backend's backprop path
            has; the parameter-shift path's autograd function does not). Default False.
            ``autograd`` only.
        method: one of :data:`METHODS`; ``auto`` (default) takes finite differences where
            ``inputs.loss_at`` is given.

    Raises:
        ValueError: ``probes < 1``, both ``seed`` and ``generator``, or an unknown ``method``; at call
            time, a ``ce_loss`` that is not attached to a graph, or ``finite-difference`` without
            ``inputs.loss_at``.

    Example::

        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> loss = (w**4).sum()  # Hessian diag(12 w²) = diag(12, 48)
        >>> inputs = RegularizerInputs(w[None], w[None], loss, (w,))
        >>> round(CurvatureRegularizer(seed=0).penalty(inputs).item(), 6)  # sqrt(12² + 48²)
        49.477268
    """

    name = "curvature"
    options = CurvatureOptions
    column = "curv"
    run_keys = (("seed", "seed"),)
    needs_second_derivatives = True

    def __init__(
        self,
        *,
        probes: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        vectorize: bool = False,
        method: str = "auto",
    ) -> None:
        if isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
            raise ValueError(f"'probes' must be an integer >= 1 (got {probes!r})")
        if seed is not None and generator is not None:
            raise ValueError("give 'seed' or 'generator', not both")
        if method not in METHODS:
            raise ValueError(f"'method' must be one of {', '.join(METHODS)} (got {method!r})")
        self.probes, self.seed, self.vectorize, self.method = probes, seed, bool(vectorize), method
        self.generator = torch.Generator().manual_seed(int(seed)) if seed is not None else generator

    def _rademacher(self, like: torch.Tensor) -> torch.Tensor:
        signs = torch.randint(0, 2, like.shape, generator=self.generator, dtype=torch.int8) * 2 - 1
        return signs.to(dtype=like.dtype, device=like.device)

    def _finite_differences(self, inputs: RegularizerInputs) -> bool:
        if self.method == "finite-difference" and inputs.loss_at is None:
            raise ValueError("method 'finite-difference' needs 'loss_at' in the regularizer inputs")
        return self.method != "autograd" and inputs.loss_at is not None

    def hv_squared_norms(self, inputs: RegularizerInputs) -> torch.Tensor:
        """``‖H v_k‖²`` for each of the ``probes`` probes, ``[probes]``; each is unbiased for ``‖H‖_F²``."""
        if self._finite_differences(inputs):
            products = self._fd_products(inputs).products
            return torch.stack([hessian.norm(hv) ** 2 for hv in products]).to(inputs.ce_loss.dtype)
        loss = inputs.ce_loss
        if not loss.requires_grad:
            raise ValueError("'ce_loss' is not attached to a graph (requires_grad is False)")
        params = [p for p in inputs.parameters if p.requires_grad]
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        # a gradient that is None or constant has a zero Hessian row (and, by symmetry, column)
        active = [g for g in grads if g is not None and g.requires_grad]
        if not active:
            return loss.new_zeros(self.probes)
        probes = [[self._rademacher(g) for g in active] for _ in range(self.probes)]  # probe-major order
        if self.vectorize:
            stacked = [torch.stack(column) for column in zip(*probes)]
            hv = torch.autograd.grad(
                active, params, grad_outputs=stacked, create_graph=True, allow_unused=True, is_grads_batched=True
            )
            return sum((h * h).flatten(start_dim=1).sum(dim=1) for h in hv if h is not None)
        samples = []
        for probe in probes:
            hv = torch.autograd.grad(active, params, grad_outputs=probe, create_graph=True, allow_unused=True)
            samples.append(sum((h * h).sum() for h in hv if h is not None))
        return torch.stack(samples)

    def _fd_products(self, inputs: RegularizerInputs) -> _Products:
        params = [p for p in inputs.parameters if p.requires_grad]
        probes = [[self._rademacher(p).double() for p in params] for _ in range(self.probes)]

        def gradient_at(values):
            leaves = [v.detach().requires_grad_(True) for v in values]
            grads = torch.autograd.grad(inputs.loss_at(leaves), leaves, allow_unused=True)
            return [torch.zeros_like(v) if g is None else g for g, v in zip(grads, leaves)]

        theta = [p.detach().double() for p in params]
        products = [hessian.hessian_vector(gradient_at, theta, v) for v in probes]
        return _Products(params, theta, gradient_at, probes, products)

    def _fd_penalty(self, inputs: RegularizerInputs) -> torch.Tensor:
        fd = self._fd_products(inputs)
        value = torch.sqrt(torch.stack([hessian.norm(hv) ** 2 for hv in fd.products]).mean())
        gradients = [torch.zeros_like(t) for t in fd.theta]
        if value > 0:
            for hv, v in zip(fd.products, fd.probes):
                part = hessian.bilinear_gradient(fd.gradient_at, fd.theta, hv, v)
                gradients = [g + q for g, q in zip(gradients, part)]
            gradients = [g / (len(fd.probes) * value) for g in gradients]
        return hessian.attach_gradient(value.to(inputs.ce_loss.dtype), fd.params, gradients)

    def penalty(self, inputs: RegularizerInputs) -> torch.Tensor:
        if self._finite_differences(inputs):
            return self._fd_penalty(inputs)
        squared = self.hv_squared_norms(inputs).mean()
        positive = squared > 0  # sqrt has no gradient at 0: define it as 0 there
        return torch.where(positive, torch.sqrt(torch.where(positive, squared, torch.ones_like(squared))), 0.0)

    def __repr__(self) -> str:
        return (
            f"CurvatureRegularizer(probes={self.probes}, seed={self.seed}, vectorize={self.vectorize}, "
            f"method={self.method!r})"
        )
