"""scikit-learn estimators: the hybrid model of ``hqf run`` (:class:`HybridClassifier`) and an SVM on a
quantum fidelity kernel (:class:`QuantumKernelSVC`), usable in pipelines, grid searches and ``clone``."""

from hqf.sklearn.hybrid import HybridClassifier
from hqf.sklearn.kernel_svc import QuantumKernelSVC

__all__ = ["HybridClassifier", "QuantumKernelSVC"]
