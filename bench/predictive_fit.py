"""Fit speed of the predictive models against `lifetimes`, on one simulated summary.

    .venv/bin/python bench/predictive_fit.py [--customers 250000] [--repeat 3] [--seed 1]
                                             [--no-lifetimes]

What it does:
  1. draws --customers summaries from known parameters (BG/NBD r=0.243, alpha=30.9 days,
     a=0.793, b=2.426 — CDNOW's, in days — and Gamma-Gamma p=6.25, q=3.74, gamma=15.44),
     with whole-day T uniform over two years and t_x floored to whole days, as a shop's
     summary from the database is (order values rounded to cents);
  2. times our BG/NBD + Gamma-Gamma fits (de-duplication of shared rows included), best
     of --repeat runs;
  3. times lifetimes 0.11.3 (BetaGeoFitter + GammaGammaFitter, default settings) on the
     same summary, best of --repeat runs. lifetimes is archived and breaks on the
     project's pandas 3, so it runs in a throwaway venv at var/bench-venv that this
     script creates on first use with pip (pinned pandas 2.2.3, numpy 2.2.6, scipy
     1.15.3, autograd 1.7.0, dill 0.3.9; it needs PyPI once). The summary goes to it as
     an .npz file; it answers with one JSON line;
  4. prints one JSON line: fit_s (ours, both models), lifetimes_s, lifetimes_ratio,
     max_param_rel_diff (over the seven parameters), the parameters and their relative
     error against the truth, customers, distinct rows.

Timings are wall-clock on whatever else the machine is running: the ratio is measured in
the same run, so both sides see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics.predictive.bgnbd import BgNbdParams, bgnbd_fit  # noqa: E402
from analytics.predictive.gamma_gamma import GammaGammaParams, gamma_gamma_fit  # noqa: E402
from analytics.predictive.rows import rows_unique  # noqa: E402
from analytics.predictive.simulate import bgnbd_simulate, gamma_gamma_simulate  # noqa: E402

VENV = ROOT / "var" / "bench-venv"
LIFETIMES_PINS = [
    "lifetimes==0.11.3",
    "pandas==2.2.3",
    "numpy==2.2.6",
    "scipy==1.15.3",
    "autograd==1.7.0",
    "dill==0.3.9",
]
TRUE_BG = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
TRUE_GG = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)

LIFETIMES_RUNNER = r"""
import json, sys, time
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter

data = np.load(sys.argv[1])
repeat = int(sys.argv[2])
x, t_x, T, m = (pd.Series(data[k]) for k in ("x", "t_x", "T", "m"))
keep = (x > 0) & (m > 0)
best = None
for _ in range(repeat):
    started = time.perf_counter()
    bg = BetaGeoFitter().fit(x, t_x, T)
    gg = GammaGammaFitter().fit(x[keep], m[keep])
    elapsed = time.perf_counter() - started
    best = elapsed if best is None else min(best, elapsed)
params = {**bg.params_.to_dict(), **gg.params_.to_dict()}
params["gamma"] = params.pop("v")
print(json.dumps({"fit_s": best, "params": params}))
"""


def lifetimes_python() -> Path:
    """The bench venv's interpreter, creating the venv on first use."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(LIFETIMES_PINS):
        return python
    print(f"predictive_fit: creating {VENV} for lifetimes (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *LIFETIMES_PINS], check=True)
    marker.write_text("\n".join(LIFETIMES_PINS))
    return python


def simulate(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = rng.integers(0, 730, n).astype(np.float64)
    x, t_x = bgnbd_simulate(TRUE_BG, T=T, rng=rng)
    m = np.round(gamma_gamma_simulate(TRUE_GG, x=x, rng=rng), 2)
    return {"x": x, "t_x": np.floor(t_x), "T": T, "m": m}


def ours(data: dict[str, np.ndarray], repeat: int) -> tuple[float, dict[str, float], int]:
    best = float("inf")
    params: dict[str, float] = {}
    for _ in range(repeat):
        started = time.perf_counter()
        bg = bgnbd_fit(x=data["x"], t_x=data["t_x"], T=data["T"])
        gg = gamma_gamma_fit(x=data["x"], m=data["m"])
        best = min(best, time.perf_counter() - started)
        params = {**bg.params.as_dict(), **gg.params.as_dict()}
    return best, params, bg.n_distinct_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-lifetimes", action="store_true", help="time our fit only")
    args = parser.parse_args()

    data = simulate(args.customers, args.seed)
    fit_s, params, distinct = ours(data, args.repeat)
    truth = {**TRUE_BG.as_dict(), **TRUE_GG.as_dict()}
    result: dict[str, object] = {
        "bench": "predictive_fit",
        "customers": args.customers,
        "distinct_rows": distinct,
        "repeat_customers": int((data["x"] > 0).sum()),
        "fit_s": round(fit_s, 4),
        "params": {k: round(v, 6) for k, v in params.items()},
        "rel_err_vs_truth": {k: round(params[k] / truth[k] - 1, 4) for k in truth},
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if not args.no_lifetimes:
        python = lifetimes_python()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "summary.npz"
            np.savez(path, **data)
            script = Path(tmp) / "run_lifetimes.py"
            script.write_text(LIFETIMES_RUNNER)
            out = subprocess.run(
                [str(python), str(script), str(path), str(args.repeat)],
                check=True,
                capture_output=True,
                text=True,
            )
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
        rel = {k: abs(params[k] - v) / abs(v) for k, v in theirs["params"].items()}
        result.update(
            lifetimes_s=round(theirs["fit_s"], 4),
            lifetimes_ratio=round(theirs["fit_s"] / fit_s, 2),
            max_param_rel_diff=float(f"{max(rel.values()):.3g}"),
            lifetimes_params={k: round(v, 6) for k, v in theirs["params"].items()},
        )
    # Shared rows, for the record: how much the weights save.
    result["dedup_ratio"] = round(args.customers / len(rows_unique(data["x"], data["t_x"], data["T"]).weights), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
