"""How far to trust the model's pairwise lifts: checked against the joint tables the spec gives.

For a pair of variables that a target table crosses, the table *is* the truth, so the model's
lifts there can be scored (:attr:`llmsynthor.prior.copula.PairwisePrior.checked`). With the lifts
raised to a strength α, the conditional the pairwise model implies is

    Q_α(a | c) ∝ P(a) · lift(c, a)^α

(α = 0: independence; α = 1: the lifts as scored). The error at α is the Kullback–Leibler
divergence of the table's conditionals from Q_α, weighted by P(c), in both directions of the pair,
averaged over the checked pairs; at α = 0 it is the tables' mutual information, what knowing
nothing costs. The strength chosen is the α of least error, and it is applied to the pairs no table
crosses. With no table to check against, a conservative default applies (said so in the result).

Hard zeros (a cell the model rules out, lift ≤ ``ZERO_LIFT``) are trusted only if, on the checked
pairs, the cells the model rules out are nearly empty in the tables too (``ZERO_PRECISION`` of
their expected mass).

Knows target tables and arrays of lifts, not LLMs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.tables import Axis, Targets

GRID = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
DEFAULT_STRENGTH = 0.25  # with no joint table to check against
ZERO_LIFT = 0.05  # a lift at most this rules a cell out ...
TRUE_ZERO_LIFT = 0.2  # ... and the tables agree where their lift is below this
ZERO_PRECISION = 0.9  # share of the ruled-out cells' expected mass that must be nearly empty in the tables
MIN_ZERO_CELLS = 3  # fewer ruled-out cells on the checked pairs is no evidence
FLAT = 0.01  # errors within this share of each other over the grid: the checked pairs cannot tell strengths apart


@dataclass(frozen=True)
class PriorCheck:
    """What the joint tables say about the model's lifts, and the strength chosen (for the manifest)."""

    strength: float
    pairs: tuple[str, ...] = ()  # the checked pairs, "c × a"
    errors: dict[float, float] = field(default_factory=dict)  # mean KL (bits) per strength tried
    correlation: float | None = None  # of the model's log-lifts with the tables', weighted by the expected mass
    zero_cells: int = 0  # cells of the checked pairs the model rules out
    zero_precision: float | None = None  # expected mass of those the tables confirm as nearly empty
    zeros: bool = False  # hard zeros applied to the pairs no table crosses
    reason: str = ""
    phrasing: str = "plain"  # how the model was asked (llmsynthor.prior.copula.score_prior)
    phrasing_errors: dict[str, float] = field(default_factory=dict)  # least error on the crossed pairs per phrasing

    def as_dict(self) -> dict:
        independent = self.errors.get(0.0)
        return {"strength": self.strength, "pairs_checked": list(self.pairs),
                "error_bits_by_strength": {f"{k:g}": round(v, 5) for k, v in self.errors.items()},
                "error_independent": None if independent is None else round(independent, 5),
                "error_chosen": round(self.errors[self.strength], 5) if self.strength in self.errors else None,
                "log_lift_correlation": None if self.correlation is None else round(self.correlation, 3),
                "zero_cells_checked": self.zero_cells,
                "zero_precision": None if self.zero_precision is None else round(self.zero_precision, 3),
                "hard_zeros": self.zeros, "phrasing": self.phrasing,
                "least_error_by_phrasing": {k: round(v, 5) for k, v in self.phrasing_errors.items()}, "reason": self.reason}


def pair_error(lift: np.ndarray, joint: np.ndarray, strength: float) -> float:
    """Mean over both directions of Σ_c P(c) KL(P(a | c) ‖ Q_α(a | c)), in bits (``lift`` and
    ``joint`` are [|c|, |a|])."""
    out = 0.0
    for L, J in ((lift, joint), (lift.T, joint.T)):
        pc, pa = J.sum(axis=1), J.sum(axis=0)
        q = pa[None, :] * L ** strength
        q = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-300)
        p = np.divide(J, pc[:, None], out=np.zeros_like(J), where=pc[:, None] > 0)
        terms = np.where(p > 0, p * np.log2(np.maximum(p, 1e-300) / np.maximum(q, 1e-300)), 0.0)
        out += float(pc @ terms.sum(axis=1))
    return out / 2


def true_lift(joint: np.ndarray) -> np.ndarray:
    """The tables' own lift P(c, a) / (P(c) P(a)) (1 where the margins are empty)."""
    expected = np.outer(joint.sum(axis=1), joint.sum(axis=0))
    return np.divide(joint, expected, out=np.ones_like(joint), where=expected > 0)


def log_lift_correlation(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """Correlation of the model's log-lifts with the true ones over every cell of ``pairs`` (model
    lift, true joint), weighted by the cell's expected mass under independence; true lifts floored at
    the model's own floor (.02) so an empty cell is comparable."""
    xs, ys, ws = [], [], []
    for lift, joint in pairs:
        truth = np.clip(true_lift(joint), 0.02, 50.0)
        xs.append(np.log(lift).ravel())
        ys.append(np.log(truth).ravel())
        ws.append(np.outer(joint.sum(axis=1), joint.sum(axis=0)).ravel())
    if not xs:
        return None
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    if w.sum() <= 0:
        return None
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    vx, vy = np.average((x - mx) ** 2, weights=w), np.average((y - my) ** 2, weights=w)
    if vx <= 1e-12 or vy <= 1e-12:
        return None
    return float(np.average((x - mx) * (y - my), weights=w) / np.sqrt(vx * vy))


def check_prior(checked: dict[tuple[str, str], np.ndarray], targets: Targets, axes: dict[str, Axis],
                grid: tuple[float, ...] = GRID, default: float = DEFAULT_STRENGTH) -> PriorCheck:
    """Choose the strength of the model's lifts from the pairs the tables cross (``checked``: (c, a) ->
    the model's lifts over ``axes[c]`` × ``axes[a]``)."""
    pairs = [(c, a, lift, targets.joint(c, a, axes)) for (c, a), lift in checked.items()]
    pairs = [(c, a, lift, joint) for c, a, lift, joint in pairs if joint is not None]
    if not pairs:
        return PriorCheck(default, reason=f"no target table crosses two variables on the prior's levels: the "
                                          f"conservative default strength {default:g} is used, unchecked")
    errors = {alpha: float(np.mean([pair_error(lift, joint, alpha) for _, _, lift, joint in pairs])) for alpha in grid}
    best = min(errors, key=lambda alpha: (round(errors[alpha], 12), alpha))
    flat = max(errors.values()) - min(errors.values()) <= FLAT * max(max(errors.values()), 1e-12)
    mass = confirmed = 0.0
    cells = 0
    for _, _, lift, joint in pairs:
        ruled_out = lift <= ZERO_LIFT
        expected = np.outer(joint.sum(axis=1), joint.sum(axis=0))
        cells += int(ruled_out.sum())
        mass += float(expected[ruled_out].sum())
        confirmed += float(expected[ruled_out & (true_lift(joint) < TRUE_ZERO_LIFT)].sum())
    precision = confirmed / mass if mass > 0 else None
    zeros = cells >= MIN_ZERO_CELLS and precision is not None and precision >= ZERO_PRECISION
    names = tuple(f"{c} × {a}" for c, a, _, _ in pairs)
    if flat:
        best = default
        how = (f"the model's lifts on the {len(pairs)} crossed pair(s) fit them equally at every strength (it says little "
               f"about them): the conservative default strength {default:g} is used")
    else:
        how = (f"strength {best:g} reproduces the {len(pairs)} crossed pair(s) best: error {errors[best]:.4f} bits against "
               f"{errors[0.0]:.4f} for independence and {errors[1.0]:.4f} for the lifts as scored" if 0.0 in errors and 1.0 in errors
               else f"strength {best:g} has the least error on the {len(pairs)} crossed pair(s)")
    zero_note = (f"; the {cells} cells the model rules out there are {precision:.0%} confirmed, so its zeros are applied"
                 if zeros else f"; hard zeros not applied ({cells} ruled-out cells checked"
                 + (f", {precision:.0%} confirmed)" if precision is not None else ")"))
    return PriorCheck(best, names, errors, log_lift_correlation([(lift, joint) for _, _, lift, joint in pairs]),
                      cells, precision, zeros, how + zero_note)
