"""The one module that imports GPyOpt: a GP + Expected Improvement suggester (the seed's defaults).

GPyOpt 1.2.6 is unmaintained; what we rely on is small and tested (tests/optimizer/test_gpyopt_backend.py):
``Design_space`` (one-hot categoricals, rounding), ``GPModel``, ``AcquisitionEI`` with gradients,
``experiment_design.initial_design`` and ``util.general.normalize``. We do not use its batch evaluators: local penalization crashes with
current SciPy, so parallel proposals use a constant liar instead (pending points are added to the GP
with the best observed value, which flattens EI around them).

Speed: the fitted GP is kept between calls and its kernel hyperparameters warm-start the next fit
(one optimizer run instead of GPyOpt's five random restarts, which are kept for the first fit and
every ``full_refit_every`` calls).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize

# GPyOpt and GPy print and warn at import; import once, here.
import GPyOpt  # noqa: E402
from GPyOpt.experiment_design import initial_design  # noqa: E402
from GPyOpt.util.general import normalize  # noqa: E402

_GLOBAL_RNG_LOCK = threading.Lock()  # GPy/GPyOpt draw from numpy's global RNG


@dataclass(frozen=True)
class Dim:
    """One GP input: a continuous range, or a categorical with ``size`` choices (indices)."""
    kind: str            # "continuous" or "categorical"
    low: float = 0.0
    high: float = 1.0
    size: int = 0


class GPEISuggester:
    """Suggests the point that maximizes EI for minimizing ``Y`` given observations ``X``.

    X rows are in GPyOpt's "zipped" form: continuous values, categorical indices.
    """

    def __init__(self, dims: list[Dim], *, full_refit_every: int = 10, candidates: int = 1000, anchors: int = 2,
                 polish_iterations: int = 30):
        domain = []
        for i, d in enumerate(dims):
            if d.kind == "categorical":
                domain.append({"name": f"x{i}", "type": "categorical", "domain": tuple(range(d.size))})
            else:
                domain.append({"name": f"x{i}", "type": "continuous", "domain": (d.low, d.high)})
        self.space = GPyOpt.Design_space(domain)
        self.full_refit_every = full_refit_every
        self.candidates, self.anchors, self.polish_iterations = candidates, anchors, polish_iterations
        self._model: GPyOpt.models.GPModel | None = None
        self._calls = 0
        self.last_fit_seconds = 0.0

    def suggest(self, X: np.ndarray, Y: np.ndarray, pending: np.ndarray | None, seed: int) -> np.ndarray:
        """One zipped point. ``Y`` is minimized; needs at least two observations."""
        if len(X) < 2:
            raise ValueError("the GP needs at least two observations")
        with _GLOBAL_RNG_LOCK:
            np.random.seed(seed % (2**32))
            Xu = self.space.unzip_inputs(np.asarray(X, dtype=float))
            Yn = normalize(np.asarray(Y, dtype=float).reshape(-1, 1))
            if not np.all(np.isfinite(Yn)):  # every Y equal: normalize divides by a zero std
                Yn = np.zeros_like(Yn)
            t0 = time.perf_counter()
            self._fit(Xu, Yn)
            self.last_fit_seconds = time.perf_counter() - t0
            gp = self._model.model
            if pending is not None and len(pending):
                # Constant liar: pretend pending points came back with the best value so far.
                Pu = self.space.unzip_inputs(np.asarray(pending, dtype=float))
                lie = np.full((len(Pu), 1), float(Yn.min()))
                gp.set_XY(np.vstack([Xu, Pu]), np.vstack([Yn, lie]))
            try:
                x = self._optimize_acquisition()
            finally:
                if pending is not None and len(pending):
                    gp.set_XY(Xu, Yn)
            return self.space.zip_inputs(np.atleast_2d(x))[0]

    def surface(self, X: np.ndarray, Y: np.ndarray, grid: np.ndarray, seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fitted surrogate at zipped ``grid`` points: posterior mean and standard deviation of
        ``Y`` (in ``Y``'s units) and EI for minimizing it (normalised units), after a full fit.

        This is what GPyOpt's ``plot_acquisition`` draws; it does not change later suggestions'
        warm start, because it fits a model of its own.
        """
        if len(X) < 2:
            raise ValueError("the GP needs at least two observations")
        Y = np.asarray(Y, dtype=float).reshape(-1, 1)
        mean, std = float(Y.mean()), float(Y.std())
        model = GPyOpt.models.GPModel(exact_feval=False, optimize_restarts=5, verbose=False)
        with _GLOBAL_RNG_LOCK:
            np.random.seed(seed % (2**32))
            model.updateModel(self.space.unzip_inputs(np.asarray(X, dtype=float)),
                              (Y - mean) / std if std > 0 else np.zeros_like(Y), None, None)
            G = self.space.unzip_inputs(np.asarray(grid, dtype=float))
            m, s = model.predict(G)
            ei = -GPyOpt.acquisitions.AcquisitionEI(model, self.space, optimizer=None).acquisition_function(G)
        scale = std if std > 0 else 1.0
        return m.ravel() * scale + mean, s.ravel() * scale, ei.ravel()

    def _fit(self, Xu: np.ndarray, Yn: np.ndarray) -> None:
        full = self._model is None or self._calls % self.full_refit_every == 0
        self._calls += 1
        if self._model is None:
            self._model = GPyOpt.models.GPModel(exact_feval=False, optimize_restarts=5, verbose=False)
        self._model.optimize_restarts = 5 if full else 1
        self._model.updateModel(Xu, Yn, None, None)

    def _optimize_acquisition(self) -> np.ndarray:
        """EI's maximum: score many random points at once, then L-BFGS from the best few.

        GPyOpt's own AcquisitionOptimizer runs L-BFGS from five anchors at one point per GP call;
        scoring candidates in one vectorised call and polishing only the top anchors finds the same
        optimum for a fraction of the GP calls (tests/optimizer/test_gpyopt_backend.py compares them).
        """
        acquisition = GPyOpt.acquisitions.AcquisitionEI(self._model, self.space, optimizer=None)
        candidates = self.space.unzip_inputs(initial_design("random", self.space, self.candidates))
        scores = acquisition.acquisition_function(candidates).ravel()  # negative EI: lower is better
        order = np.argsort(scores)[: self.anchors]
        best_x, best_f = candidates[order[0]], float(scores[order[0]])
        bounds = self.space.get_bounds()

        def f_df(x: np.ndarray) -> tuple[float, np.ndarray]:
            f, df = acquisition.acquisition_function_withGradients(np.atleast_2d(x))
            return float(f[0, 0]), np.asarray(df).ravel()

        for i in order:
            res = scipy.optimize.minimize(f_df, candidates[i], jac=True, method="L-BFGS-B", bounds=bounds,
                                          options={"maxiter": self.polish_iterations})
            x = self.space.round_optimum(res.x)[0]
            fx = float(acquisition.acquisition_function(np.atleast_2d(x))[0, 0])
            if fx < best_f:
                best_x, best_f = x, fx
        return best_x
