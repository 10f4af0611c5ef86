"""Win rate against a reference, with a bootstrap interval and a length-controlled variant.

Each prompt is one comparison of the model's answer with the reference's: outcome 1 (win), 0.5
(tie) or 0 (loss). Win rate = mean outcome (ties count half, as AlpacaEval does).

    outcomes_from_scores(model, ref)   a reward model's preference: the higher score wins
    outcomes_from_verdicts(verdicts)   an LLM judge asked in both orders (`preference.judge`): a win
                                       only when both orders agree, otherwise a tie
    win_rate_report(outcomes, ...)     wins / ties / losses, the win rate and its bootstrap 95%
                                       interval, and the length-controlled win rate with its interval

Length control (AlpacaEval 2.0's LC, reduced to one comparison set): a logistic regression of the
outcome on tanh(length difference / its std); the LC win rate is the predicted win probability at
equal length, sigmoid(intercept). An RM or judge that likes long answers gives a long-winded
model a raw win rate the LC one takes back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Scores closer than this are a tie (identical answers get identical scores).
TIE_EPS = 1e-6


def outcomes_from_scores(model_scores: Sequence[float], ref_scores: Sequence[float], tie_eps: float = TIE_EPS) -> np.ndarray:
    d = np.asarray(model_scores, dtype=np.float64) - np.asarray(ref_scores, dtype=np.float64)
    return np.where(d > tie_eps, 1.0, np.where(d < -tie_eps, 0.0, 0.5))


def outcomes_from_verdicts(verdicts) -> np.ndarray:
    """Verdicts of (prompt, model answer, reference answer) triples: winner +1 -> 1, 0 -> 0.5, -1 -> 0."""
    return np.array([(v.winner + 1) / 2 for v in verdicts], dtype=np.float64)


def position_bias(verdicts) -> dict:
    """How the judge's choice depends on where an answer is shown: the share of the 2n judgments
    that picked the first position (0.5 = no bias) and the share of items whose two orders agree."""
    n = len(verdicts)
    if not n:
        return {"first_position_rate": None, "consistent": None}
    first = sum((v.margin_ab > 0) + (v.margin_ba > 0) for v in verdicts)
    return {"first_position_rate": first / (2 * n), "consistent": sum(v.winner != 0 for v in verdicts) / n}


def _lc_features(len_model: np.ndarray, len_ref: np.ndarray) -> np.ndarray:
    diff = len_model - len_ref
    sd = diff.std()
    return np.tanh(diff / sd) if sd > 0 else np.zeros_like(diff)


def length_controlled(outcomes: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """(LC win rate, length coefficient) from outcomes and tanh-scaled length differences. Each
    outcome o enters as a win with weight o and a loss with weight 1 - o. A mild L2 penalty keeps
    the fit finite when every comparison goes one way."""
    from sklearn.linear_model import LogisticRegression

    if np.all(outcomes == outcomes[0]) or np.all(x == 0):
        return float(outcomes.mean()), 0.0
    X = np.concatenate([x, x])[:, None]
    y = np.concatenate([np.ones_like(outcomes), np.zeros_like(outcomes)])
    w = np.concatenate([outcomes, 1 - outcomes])
    keep = w > 0
    fit = LogisticRegression(C=10.0).fit(X[keep], y[keep], sample_weight=w[keep])
    return float(1 / (1 + np.exp(-fit.intercept_[0]))), float(fit.coef_[0, 0])


def win_rate_report(outcomes: Sequence[float], len_model: Sequence[float], len_ref: Sequence[float],
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """Counts, win rate and LC win rate, each with a percentile bootstrap 95% interval over prompts."""
    o = np.asarray(outcomes, dtype=np.float64)
    n = len(o)
    if n == 0:
        raise ValueError("no comparisons: the win rate needs at least one prompt")
    x = _lc_features(np.asarray(len_model, dtype=np.float64), np.asarray(len_ref, dtype=np.float64))
    lc, coef = length_controlled(o, x)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boot = o[idx].mean(1)
    # LC refits per resample: fewer resamples keep it cheap (the interval is for reading, not testing).
    lc_boot = np.array([length_controlled(o[i], x[i])[0] for i in idx[: max(n_boot // 5, 50)]])
    return {"n": n, "wins": int((o == 1).sum()), "ties": int((o == 0.5).sum()), "losses": int((o == 0).sum()),
            "win_rate": float(o.mean()), "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
            "lc_win_rate": lc, "lc_ci95": [float(np.quantile(lc_boot, 0.025)), float(np.quantile(lc_boot, 0.975))],
            "length_coef": coef}
