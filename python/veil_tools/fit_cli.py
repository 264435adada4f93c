"""Command line for activation fitting (``python/fit_activation.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

import numpy as np

from . import activations as A


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fit_activation.py",
        description="Fit polynomial approximations of activation functions for CKKS "
                    "(coefficients in ascending powers), or compare with PRISM's "
                    "published degree-4 Softplus polynomials.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  fit_activation.py fit softplus --degree 4 --bound 6 --method remez\n"
               "  fit_activation.py fit relu --degree 2 --bound 4 --method lsq --weight gauss:1.5\n"
               "  fit_activation.py fit gelu -d 8 -B 8 --method lawson --json\n"
               "  fit_activation.py prism            # comparison table with PRISM's fits\n")
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("fit", help="fit one function",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    f.add_argument("function", choices=sorted(A.FUNCTIONS), help="function to approximate")
    f.add_argument("-d", "--degree", type=int, default=4, help="polynomial degree")
    f.add_argument("-B", "--bound", type=float, default=6.0, help="fit on [-B, B]")
    f.add_argument("-m", "--method", choices=["lsq", "remez", "lawson"], default="remez",
                   help="least squares, minimax by Remez exchange, or minimax by "
                        "Lawson's iteratively reweighted least squares")
    f.add_argument("-w", "--weight", default="none",
                   help="input weighting: none | gauss:SIGMA | gauss:SIGMA:FLOOR "
                        "(lsq: weight on the squared error; minimax: on the absolute error)")
    f.add_argument("--grid", type=int, default=20001, help="grid points on [-B, B]")
    f.add_argument("--no-symmetry", action="store_true",
                   help="do not snap c1 to 1/2 and odd c_k (k>=3) to 0")
    f.add_argument("--json", action="store_true", help="print the result as JSON")

    c = sub.add_parser("prism", help="compare our fits with PRISM's published polynomials",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("-B", "--bound", type=float, default=6.0, help="interval for the errors")
    c.add_argument("--json", action="store_true", help="print the table as JSON")
    return p


def _coeff_str(cs):
    return "[" + ", ".join(f"{v:.9g}" for v in cs) + "]"


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "fit":
        r = A.fit(args.function, args.degree, args.bound, args.method, args.weight,
                  n=args.grid, even_odd=not args.no_symmetry)
        if args.json:
            print(json.dumps(r.to_dict(), indent=2))
            return 0
        print(f"function     : {r.function}")
        print(f"interval     : [-{r.bound:g}, {r.bound:g}]")
        print(f"degree       : {r.degree}")
        print(f"method       : {r.method} ({r.iterations} iterations)")
        print(f"weight       : {r.weight}")
        print(f"coefficients : {_coeff_str(r.coefficients)}   (ascending powers c0..c{r.degree})")
        print(f"p(x)         = {A.format_poly(r.coefficients)}")
        print(f"max error    : {r.max_error:.6g}   (max |f(x) - p(x)| on the interval)")
        if r.weight != "none":
            print(f"max weighted : {r.max_weighted_error:.6g}")
        print(f"rms error    : {r.rms_error:.6g}")
        if r.equioscillation:
            print("reference    : " + ", ".join(f"{v:.4f}" for v in r.equioscillation)
                  + "   (equioscillation points)")
        return 0
    rows = A.prism_comparison(args.bound)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Softplus, degree 4, errors measured on [-{args.bound:g}, {args.bound:g}]")
    hdr = f"{'fit':44s} {'c0':>10s} {'c2':>11s} {'c4':>12s} {'max err':>9s} {'rms err':>9s} {'coef diff':>9s}  how"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        c = r["coefficients"]
        d = r.get("max_rel_coeff_diff")
        print(f"{r['name']:44s} {c[0]:10.6f} {c[2]:11.7f} {c[4]:12.4e} {r['max_error']:9.5f} "
              f"{r['rms_error']:9.5f} {('' if d is None else f'{d * 100:8.2f}%'):>9s}  {r['note']}")
    print("coef diff: largest relative difference of c0, c2, c4 from the PRISM polynomial the "
          "row imitates (c1 = 0.5 and c3 = 0 in every row).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
