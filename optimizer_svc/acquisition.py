"""Where to look next: log expected improvement over a mixed space, maximised without hugging the bounds.

LogEI (Ament et al. 2023) instead of EI: the same maximiser, but finite and with useful gradients
where EI underflows to zero, which is most of the space once the model is confident. The search:
score many random points and perturbations of the best observed ones in one vectorised call, then
from the best few run L-BFGS-B over the continuous coordinates (analytic gradients) alternating with
an exhaustive sweep over each categorical's choices. Every scored point is returned, best first, so
the proposer can skip one too close to a tried or running point without falling back to random.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import scipy.special

from .gp import Features, GaussianProcess

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z * Phi(z)), stable for very negative z (where EI's formula cancels)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    hi = z > -1.0
    zh = z[hi]
    out[hi] = np.log(np.exp(-0.5 * zh * zh) / math.sqrt(2 * math.pi) + zh * scipy.special.ndtr(zh))
    zl = np.maximum(z[~hi], -1e6)
    out[~hi] = (-0.5 * zl * zl - LOG_SQRT_2PI
                + np.log1p(zl * math.sqrt(math.pi / 2) * scipy.special.erfcx(-zl / math.sqrt(2))))
    return out


def log_ei(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    sd = np.sqrt(var)
    return log_h((mean - best) / sd) + np.log(sd)


def _log_ei_grad(gp: GaussianProcess, z: np.ndarray, best: float, cols: list[int]) -> tuple[float, np.ndarray]:
    mean, var, dmean, dvar = gp.predict_grad(z)
    sd = math.sqrt(var)
    u = (mean - best) / sd
    lh = float(log_h(np.array([u]))[0])
    ratio = math.exp(float(scipy.special.log_ndtr(u)) - lh)  # d log h / du = Phi(u) / h(u)
    dsd = dvar / (2.0 * sd)
    grad = ratio * (dmean / sd - u * dsd / sd) + dsd / sd
    return lh + math.log(sd), grad[cols]


class AcquisitionSearch:
    def __init__(self, features: Features, *, candidates: int = 1024, local: int = 512, starts: int = 3,
                 rounds: int = 2, polish_iterations: int = 30):
        self.f = features
        self.candidates, self.local, self.starts = candidates, local, starts
        self.rounds, self.polish_iterations = rounds, polish_iterations

    def ranked(self, gp: GaussianProcess, best: float, incumbents: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        """Every scored unit point (rows) and its log EI, best first; ``incumbents`` are the best
        observed unit points, around which part of the candidates are drawn."""
        d = len(self.f.params)
        U = [rng.random((self.candidates, d))]
        if len(incumbents):
            picks = incumbents[rng.integers(0, len(incumbents), self.local)]
            scale = rng.choice([0.02, 0.1, 0.25], size=(self.local, 1))
            local = picks + scale * rng.standard_normal((self.local, d))
            flip = rng.random((self.local, d)) < 1.0 / max(d, 1)   # also move a few categoricals
            local = np.where(flip, rng.random((self.local, d)), local)
            U.append(local)
        U = self.f.snap(np.clip(np.vstack(U), 0.0, 1.0))
        scores = self._score(gp, U, best)
        refined = [self._refine(gp, U[i], float(scores[i]), best) for i in np.argsort(-scores)[: self.starts]]
        scores = np.concatenate([scores, [s for s, _ in refined]])
        U = np.vstack([U] + [u[None, :] for _, u in refined])
        order = np.argsort(-scores, kind="stable")
        return U[order], scores[order]

    def _score(self, gp: GaussianProcess, U: np.ndarray, best: float) -> np.ndarray:
        mean, var = gp.predict(self.f(U))
        s = log_ei(mean, var, best)
        return np.where(np.isfinite(s), s, -np.inf)

    def _refine(self, gp: GaussianProcess, u: np.ndarray, score: float, best: float) -> tuple[float, np.ndarray]:
        cont, cols = self.f.continuous, self.f.continuous_columns()
        for _ in range(self.rounds):
            start = score
            if cont:
                base = u.copy()

                def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
                    base[cont] = x
                    v, g = _log_ei_grad(gp, self.f(base)[0], best, cols)
                    return (-v, -g) if math.isfinite(v) else (1e10, np.zeros_like(x))

                res = scipy.optimize.minimize(negative, u[cont], jac=True, method="L-BFGS-B",
                                              bounds=[(0.0, 1.0)] * len(cont),
                                              options={"maxiter": self.polish_iterations})
                trial = u.copy()
                trial[cont] = res.x
                trial = self.f.snap(trial[None, :])[0]
                s = float(self._score(gp, trial[None, :], best)[0])
                if s > score:
                    u, score = trial, s
            for j, k in self.f.categorical:
                options = np.repeat(u[None, :], k, axis=0)
                options[:, j] = (np.arange(k) + 0.5) / k
                s = self._score(gp, options, best)
                i = int(np.argmax(s))
                if s[i] > score:
                    u, score = options[i], float(s[i])
            if score <= start + 1e-9:
                break
        return score, u
