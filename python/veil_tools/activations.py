"""Polynomial approximations of activation functions on [-B, B].

All fits work on a dense grid and in the Chebyshev basis of t = x / B (well conditioned),
and return coefficients in ascending powers of x (c0 .. cd).

Methods
-------
lsq     (weighted) least squares:  min sum_i w_i (f(x_i) - p(x_i))^2
remez   (weighted) minimax by the Remez exchange algorithm on the grid:
        min max_i w_i |f(x_i) - p(x_i)|; the result equioscillates at d+2 points.
lawson  (weighted) minimax by Lawson's iteratively reweighted least squares; converges
        to the same minimax solution more slowly, used as a fallback when the exchange
        degenerates.

Weights
-------
"none"                 w(x) = 1
"gauss:SIGMA"          w(x) = exp(-x^2 / (2 SIGMA^2))     (density of N(0, SIGMA^2))
"gauss:SIGMA:FLOOR"    w(x) = FLOOR + exp(-x^2 / (2 SIGMA^2))
For least squares w multiplies the squared error (a distribution of inputs); for minimax
w multiplies the absolute error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P

_erf = np.vectorize(math.erf, otypes=[float])


def relu(x):
    return np.maximum(x, 0.0)


def softplus(x):
    return np.logaddexp(0.0, x)


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu(x):
    return 0.5 * x * (1.0 + _erf(np.asarray(x, dtype=float) / math.sqrt(2.0)))


def square(x):
    return np.asarray(x, dtype=float) ** 2


FUNCTIONS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": relu,
    "softplus": softplus,
    "silu": silu,
    "swish": silu,
    "gelu": gelu,
    "square": square,
}

# PRISM's published polynomials (Softplus, degree 4, [-6, 6]); ascending powers.
PRISM_POLYS = {
    "prism": [0.738099333, 0.5, 0.0887234775, 0.0, -0.00068481],
    "prism-early": [0.700459235, 0.5, 0.115754806, 0.0, -2.2273406e-3],
}


def weight_function(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """Parse a weight spec ("none", "gauss:SIGMA", "gauss:SIGMA:FLOOR")."""
    if spec in (None, "", "none"):
        return lambda x: np.ones_like(x, dtype=float)
    parts = spec.split(":")
    if parts[0] == "gauss" and len(parts) in (2, 3):
        sigma = float(parts[1])
        floor = float(parts[2]) if len(parts) == 3 else 0.0
        if sigma <= 0 or floor < 0:
            raise ValueError(f"bad weight spec {spec!r}")
        return lambda x: floor + np.exp(-np.asarray(x, float) ** 2 / (2.0 * sigma * sigma))
    raise ValueError(f"unknown weight spec {spec!r} (use none, gauss:SIGMA or gauss:SIGMA:FLOOR)")


def cheb_to_power(cheb: np.ndarray, bound: float) -> np.ndarray:
    """Chebyshev coefficients in t = x/B  ->  power coefficients in x (ascending)."""
    pt = C.cheb2poly(cheb)  # ascending powers of t
    scale = bound ** -np.arange(len(pt), dtype=float)
    return pt * scale


def power_eval(coeffs: Sequence[float], x: np.ndarray) -> np.ndarray:
    return P.polyval(np.asarray(x, dtype=float), np.asarray(coeffs, dtype=float))


@dataclass
class Fit:
    function: str
    degree: int
    bound: float
    method: str
    weight: str
    coefficients: List[float]          # ascending powers of x
    max_error: float                   # max |f - p| on [-B, B] (unweighted)
    max_weighted_error: float          # max w |f - p| (what minimax minimises)
    rms_error: float                   # sqrt(mean (f-p)^2) on a uniform grid
    iterations: int = 0
    equioscillation: List[float] = field(default_factory=list)  # reference points (remez)

    def to_dict(self):
        return dict(self.__dict__)


def _grid(bound: float, n: int) -> np.ndarray:
    # uniform grid plus Chebyshev nodes for good coverage near the ends
    u = np.linspace(-bound, bound, n)
    c = bound * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    return np.unique(np.concatenate([u, c, [-bound, 0.0, bound]]))


def _vander(x: np.ndarray, bound: float, degree: int) -> np.ndarray:
    return C.chebvander(x / bound, degree)


def fit_lsq(f, bound, degree, w=None, n=20001):
    x = _grid(bound, n)
    y = f(x)
    ww = np.ones_like(x) if w is None else w(x)
    V = _vander(x, bound, degree)
    sw = np.sqrt(ww)
    cheb, *_ = np.linalg.lstsq(V * sw[:, None], y * sw, rcond=None)
    return cheb, 0


def fit_lawson(f, bound, degree, w=None, n=20001, iters=2000, tol=1e-10):
    """Lawson's algorithm: IRLS whose fixed point is the (weighted) minimax fit."""
    x = _grid(bound, n)
    y = f(x)
    ww = np.ones_like(x) if w is None else w(x)
    V = _vander(x, bound, degree)
    lam = np.full(len(x), 1.0 / len(x))
    best = None
    best_err = np.inf
    it = 0
    for it in range(1, iters + 1):
        sw = np.sqrt(lam) * ww
        cheb, *_ = np.linalg.lstsq(V * sw[:, None], y * sw, rcond=None)
        e = ww * np.abs(y - V @ cheb)
        emax = e.max()
        if emax < best_err:
            best, best_err = cheb, emax
        # Lawson update
        lam = lam * e
        s = lam.sum()
        if s <= 0:
            break
        lam /= s
        # duality gap: weighted lsq error (lower bound) vs max (upper bound)
        lower = math.sqrt(float(np.sum(lam * e * e)) / max(float(np.sum(lam)), 1e-300))
        if emax - lower < tol * max(emax, 1e-300):
            break
    return best, it


def _alternating_extrema(err: np.ndarray) -> np.ndarray:
    """One index per maximal run of constant sign (its largest |err|): alternating signs."""
    sign = np.sign(err)
    # treat exact zeros as belonging to the previous run
    for i in range(1, len(sign)):
        if sign[i] == 0:
            sign[i] = sign[i - 1]
    idx = []
    start = 0
    for i in range(1, len(err) + 1):
        if i == len(err) or sign[i] != sign[start]:
            seg = np.arange(start, i)
            idx.append(seg[np.argmax(np.abs(err[seg]))])
            start = i
    return np.array(idx, dtype=int)


def fit_remez(f, bound, degree, w=None, n=20001, iters=100, tol=1e-12):
    """Discrete Remez exchange for min max w |f - p| on the grid."""
    x = _grid(bound, n)
    y = f(x)
    ww = np.ones_like(x) if w is None else w(x)
    V = _vander(x, bound, degree)
    m = degree + 2
    # initial reference: Chebyshev extrema
    tref = -np.cos(np.pi * np.arange(m) / (m - 1))
    ref = np.unique(np.searchsorted(x, tref * bound).clip(0, len(x) - 1))
    if len(ref) != m:
        raise RuntimeError("grid too coarse for the Remez reference")
    cheb = None
    it = 0
    for it in range(1, iters + 1):
        A = np.zeros((m, m))
        A[:, : degree + 1] = V[ref]
        A[:, degree + 1] = ((-1.0) ** np.arange(m)) / ww[ref]
        sol = np.linalg.solve(A, y[ref])
        cheb, E = sol[: degree + 1], abs(sol[degree + 1])
        err = ww * (y - V @ cheb)
        emax = np.abs(err).max()
        ext = _alternating_extrema(err)
        if len(ext) < m:
            raise RuntimeError("Remez: fewer alternations than needed")
        # reduce to m points keeping alternation, keeping the global maximum
        ext = list(ext)
        while len(ext) > m:
            mags = np.abs(err[ext])
            if len(ext) == m + 1:
                ext.pop(0 if mags[0] < mags[-1] else -1)
                continue
            k = int(np.argmin(mags))
            if k == 0 or k == len(ext) - 1:
                ext.pop(k)
            else:
                j = k - 1 if mags[k - 1] < mags[k + 1] else k + 1
                for t in sorted((k, j), reverse=True):
                    ext.pop(t)
        new_ref = np.array(ext, dtype=int)
        if emax - E <= tol * max(emax, 1e-300) or np.array_equal(new_ref, ref):
            ref = new_ref
            break
        ref = new_ref
    return cheb, it, x[ref]


def fit(function: str, degree: int, bound: float, method: str = "remez",
        weight: str = "none", n: int = 20001, even_odd: bool = True) -> Fit:
    """Fit ``function`` by a degree-``degree`` polynomial on [-bound, bound]."""
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; choose from {sorted(FUNCTIONS)}")
    if degree < 1:
        raise ValueError("degree must be >= 1")
    if bound <= 0:
        raise ValueError("bound must be > 0")
    f = FUNCTIONS[function]
    w = weight_function(weight)
    refpts: List[float] = []
    if method == "lsq":
        cheb, it = fit_lsq(f, bound, degree, w, n)
    elif method == "lawson":
        cheb, it = fit_lawson(f, bound, degree, w, n)
    elif method == "remez":
        try:
            cheb, it, ref = fit_remez(f, bound, degree, w, n)
            refpts = [float(v) for v in ref]
        except (RuntimeError, np.linalg.LinAlgError):
            cheb, it = fit_lawson(f, bound, degree, w, n)
            method = "remez->lawson"
    else:
        raise ValueError(f"unknown method {method!r} (lsq, remez, lawson)")
    coeffs = cheb_to_power(cheb, bound)
    if even_odd and function in ("relu", "softplus", "silu", "swish", "gelu"):
        # f(x) - x/2 is even for all four: the exact minimax/lsq fit (symmetric grid and
        # weights) has c1 = 1/2 and odd c_k = 0 for k >= 3; remove rounding noise.
        coeffs = coeffs.copy()
        if len(coeffs) > 1:
            coeffs[1] = 0.5
        for k in range(3, len(coeffs), 2):
            coeffs[k] = 0.0
    coeffs = [float(c) for c in coeffs]
    return Fit(function=function, degree=degree, bound=bound, method=method, weight=weight,
               coefficients=coeffs, iterations=int(it), equioscillation=refpts,
               **errors(function, coeffs, bound, weight))


def errors(function: str, coeffs: Sequence[float], bound: float, weight: str = "none",
           n: int = 200001) -> dict:
    f = FUNCTIONS[function]
    x = np.linspace(-bound, bound, n)
    e = f(x) - power_eval(coeffs, x)
    w = weight_function(weight)(x)
    return dict(max_error=float(np.abs(e).max()),
                max_weighted_error=float(np.abs(w * e).max()),
                rms_error=float(np.sqrt(np.mean(e * e))))


def format_poly(coeffs: Sequence[float]) -> str:
    terms = []
    for k, c in enumerate(coeffs):
        if c == 0.0:
            continue
        terms.append(f"{c:+.9g}" + ("" if k == 0 else (" x" if k == 1 else f" x^{k}")))
    return " ".join(terms) if terms else "0"


def prism_comparison(bound: float = 6.0, n: int = 4001) -> List[dict]:
    """Compare PRISM's degree-4 Softplus polynomials with our fits.

    Rows: the two published polynomials, plain least squares, plain minimax (Remez),
    and, for each published polynomial, the best-matching member of three one-parameter
    families (minimax on [-B', B'], Gaussian-weighted least squares on [-B, B], uniform
    least squares on [-B', B']), found by a coarse scan of the parameter refined 10x
    around the best value.
    """
    rows = []

    def row(name, coeffs, note=""):
        e = errors("softplus", coeffs, bound, "none", n=200001)
        return dict(name=name, coefficients=[float(c) for c in coeffs], note=note,
                    max_error=e["max_error"], rms_error=e["rms_error"])

    for k, c in PRISM_POLYS.items():
        rows.append(row(k, c, "published"))
    rows.append(row("lsq", fit("softplus", 4, bound, "lsq", n=n).coefficients,
                    f"uniform least squares on [-{bound:g},{bound:g}]"))
    rows.append(row("minimax", fit("softplus", 4, bound, "remez", n=n).coefficients,
                    f"Remez minimax on [-{bound:g},{bound:g}]"))

    def dist(a, b):
        a, b = np.asarray(a), np.asarray(b)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3)))

    families = {
        "minimax[-B',B']": (np.arange(5.0, 10.01, 0.05),
                            lambda p: fit("softplus", 4, p, "remez", n=n).coefficients,
                            "minimax on [-{p:.3f},{p:.3f}]"),
        "lsq gauss": (np.arange(1.0, 8.01, 0.05),
                      lambda p: fit("softplus", 4, bound, "lsq", f"gauss:{p:.3f}", n=n).coefficients,
                      "least squares on [-6,6], weight N(0,{p:.3f}^2)"),
        "lsq on [-B',B']": (np.arange(4.0, 12.01, 0.05),
                            lambda p: fit("softplus", 4, p, "lsq", n=n).coefficients,
                            "uniform least squares on [-{p:.3f},{p:.3f}]"),
    }
    for target, tc in PRISM_POLYS.items():
        for fam, (params, fn, note) in families.items():
            best = None
            step = float(params[1] - params[0])
            for p in params:
                c = fn(float(p))
                d = dist(c, tc)
                if best is None or d < best[0]:
                    best = (d, float(p), c)
            for p in np.arange(best[1] - step, best[1] + step + 1e-9, step / 10):
                c = fn(float(p))
                d = dist(c, tc)
                if d < best[0]:
                    best = (d, float(p), c)
            r = row(f"~{target} ({fam})", best[2], note.format(p=best[1]))
            r["max_rel_coeff_diff"] = best[0]
            rows.append(r)
    return rows
