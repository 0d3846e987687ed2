"""Ground-truth generators for examples and benchmarks.

``ecommerce_sample`` draws from the e-commerce Bayesian network of the LLMSynthor paper:
p(A,G,L,C,X,M) = p(A) p(G) p(L) p(C|A,G) p(X|C) p(M|L), with the paper's parameters (the age
mixture weights .5/.45/.15 sum to 1.1 and are normalized, as the paper's notes say).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import truncnorm

from ..core.statistics import encode_axis
from ..core.tables import Axis, interval_label

CATEGORIES = ["Electronics", "Apparel", "Food & Beverages", "Furniture & Appliances"]
_AGE_MIX = (np.array([0.5, 0.45, 0.15]) / 1.10, np.array([24.0, 38.0, 55.0]), np.array([6.0, 15.0, 10.0]))
_CATEGORY_GIVEN = {
    ("young", "Male"): [0.50, 0.25, 0.05, 0.20],
    ("young", "Female"): [0.20, 0.50, 0.05, 0.25],
    ("middle", "Male"): [0.20, 0.10, 0.50, 0.20],
    ("middle", "Female"): [0.10, 0.20, 0.55, 0.15],
    ("old", "Male"): [0.10, 0.10, 0.65, 0.15],
    ("old", "Female"): [0.10, 0.10, 0.60, 0.20],
}
_PRICE_GIVEN = {"Electronics": (800, 1000), "Apparel": (100, 500), "Food & Beverages": (100, 400), "Furniture & Appliances": (200, 500)}
_ONLINE_GIVEN = {"Developed": 0.70, "Developing": 0.40}


def _truncnorm(mean, sd, lo, hi, size, rng):
    a, b = (lo - mean) / sd, (hi - mean) / sd
    return truncnorm.rvs(a, b, loc=mean, scale=sd, size=size, random_state=rng)


def ecommerce_sample(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` customers from the paper's e-commerce network (age int 18–90, price float 0–2000)."""
    rng = np.random.default_rng(seed)
    weights, means, sds = _AGE_MIX
    comp = rng.choice(3, size=n, p=weights)
    age = np.empty(n)
    for k in range(3):
        idx = np.flatnonzero(comp == k)
        age[idx] = _truncnorm(means[k], sds[k], 18, 90, idx.size, rng)
    age = np.clip(np.round(age), 18, 90).astype(np.int64)
    gender = rng.choice(["Male", "Female"], size=n, p=[0.45, 0.55])
    location = rng.choice(["Developed", "Developing"], size=n, p=[0.4, 0.6])
    group = np.where(age < 35, "young", np.where(age < 55, "middle", "old"))
    category = np.empty(n, dtype=object)
    for (g, s), probs in _CATEGORY_GIVEN.items():
        idx = np.flatnonzero((group == g) & (gender == s))
        category[idx] = rng.choice(CATEGORIES, size=idx.size, p=probs)
    price = np.empty(n)
    for cat, (mean, sd) in _PRICE_GIVEN.items():
        idx = np.flatnonzero(category == cat)
        price[idx] = _truncnorm(mean, sd, 0, 2000, idx.size, rng)
    online = rng.random(n) < np.vectorize(_ONLINE_GIVEN.get)(location)
    payment = np.where(online, "Online", "COD")
    return pd.DataFrame(
        {"age": age, "gender": gender, "location": location, "category": category.astype(str),
         "price": np.round(price, 2), "payment": payment}
    )


def quantile_edges(values: np.ndarray, bins: int, var) -> list[float]:
    """Edges of ``bins`` quantile bins of ``values`` over [var.min, var.max], inner edges rounded."""
    inner = np.unique(np.round(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])))
    inner = inner[(inner > var.min) & (inner < var.max)]
    return [float(var.min), *map(float, inner), float(var.max)]


def binned(values: pd.Series, var, edges: list[float]) -> pd.Series:
    """Spec-format bin labels (``[a,b)``, the last ``[a,b]``) of numeric values; ``edges`` run
    from the variable's min to its max."""
    inner = np.array([*edges[:-1], var.top], dtype=float)
    axis = Axis(str(values.name), tuple(interval_label(a, b, var) for a, b in zip(inner[:-1], inner[1:])), inner)
    return pd.Series(np.asarray(axis.labels, dtype=object)[encode_axis(axis, values)], index=values.index)


def contingency(frame: pd.DataFrame, variables: list[str]) -> pd.DataFrame:
    """Counts of every observed combination of ``variables`` (a target table with a count column)."""
    return frame.groupby(variables, sort=True).size().rename("count").reset_index()
