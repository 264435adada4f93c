"""veil_tools: training, activation fitting and ONNX export for veil's HE-friendly models.

Modules
-------
activations  polynomial fits (least squares, minimax/Remez, weighted) of ReLU, Softplus,
             SiLU and GELU; PRISM reference polynomials.
polyact      PyTorch polynomial activation ``y = s * p(x) + b`` with range tracking and
             the range penalty.
data         loaders for MNIST, Fashion-MNIST (IDX, raw or .gz) and CIFAR-10 (binary).
nets         the shipped architectures.
train        the training driver (``python/train.py``).
export       ONNX export in veil's format (``docs/model-format.md``) and verification.
onnx_ref     a small numpy interpreter for veil's ONNX op subset.
samples      writes sample inputs (PNG, IDX, CIFAR binary).
"""

__version__ = "1"
