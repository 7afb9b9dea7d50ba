"""``logistic``: multinomial logistic regression, the classical baseline of seed 001 (QENN)."""

from __future__ import annotations

import torch

from hqf.registry.contracts import Baseline, BaselineInputs


class LogisticRegression(Baseline):
    """``softmax(W x + b)``: one ``nn.Linear(in_features, n_classes)``, trained by the same loop.

    Cross-entropy on its logits is the multinomial logistic-regression likelihood; the optimizer's
    weight decay is its L2 penalty.

    Example::

        >>> LogisticRegression().build(BaselineInputs(128, 12, None, None, None, 0, "angle", {}, None, None))
        Linear(in_features=128, out_features=12, bias=True)
    """

    name = "logistic"
    description = "multinomial logistic regression (seed 001's baseline)"
    receives_inputs = True

    def build(self, inputs: BaselineInputs) -> torch.nn.Module:
        in_features, n_classes = inputs.in_features, inputs.n_classes
        if in_features < 1 or n_classes < 2:
            raise ValueError(
                f"logistic regression needs in_features >= 1 and n_classes >= 2 (got {in_features}, {n_classes})"
            )
        return torch.nn.Linear(in_features, n_classes)
