"""What Saga relies on from GPyOpt 1.2.6 (unmaintained), checked against the installed versions."""
import numpy as np
import GPyOpt

from optimizer_svc.gpyopt_backend import Dim, GPEISuggester


def data(rng, n=12):
    X = np.column_stack([rng.random(n), rng.integers(0, 3, n)])
    Y = ((X[:, 0] - 0.3) ** 2 + 0.2 * (X[:, 1] != 1)).reshape(-1, 1)
    return X, Y


def test_design_space_one_hot_round_trip_and_rounding():
    space = GPyOpt.Design_space([{"name": "x", "type": "continuous", "domain": (0, 1)},
                                 {"name": "c", "type": "categorical", "domain": (0, 1, 2)}])
    X = np.array([[0.25, 2.0], [0.75, 0.0]])
    U = space.unzip_inputs(X)
    assert U.shape == (2, 4) and U[0].tolist() == [0.25, 0, 0, 1]
    assert np.array_equal(space.zip_inputs(U), X)
    assert space.round_optimum(np.array([0.4, 0.2, 0.7, 0.1]))[0].tolist() == [0.4, 0, 1, 0]


def test_suggestions_are_valid_and_exploit_the_model():
    rng = np.random.default_rng(0)
    X, Y = data(rng)
    s = GPEISuggester([Dim("continuous"), Dim("categorical", size=3)])
    x = s.suggest(X, Y, None, seed=1)
    assert 0 <= x[0] <= 1 and x[1] in (0, 1, 2)
    assert x[1] == 1 and abs(x[0] - 0.3) < 0.25  # the minimum is at x=0.3, category 1


def test_warm_start_keeps_kernel_hyperparameters_between_calls():
    rng = np.random.default_rng(1)
    X, Y = data(rng, 20)
    s = GPEISuggester([Dim("continuous"), Dim("categorical", size=3)])
    s.suggest(X[:19], Y[:19], None, seed=1)
    first = s._model.model.param_array.copy()
    s.suggest(X, Y, None, seed=2)
    assert s._model.optimize_restarts == 1  # warm: one run from the last optimum, not five restarts
    assert np.allclose(first, s._model.model.param_array, rtol=0.5)


def test_constant_liar_moves_away_from_a_pending_point():
    rng = np.random.default_rng(2)
    X, Y = data(rng)
    s = GPEISuggester([Dim("continuous"), Dim("categorical", size=3)])
    first = s.suggest(X, Y, None, seed=3)
    second = s.suggest(X, Y, first.reshape(1, -1), seed=3)
    assert not np.allclose(first, second, atol=1e-3)
    # the lie is only for that call: the model's data is the real observations again
    assert s._model.model.X.shape[0] == len(X)


def test_our_acquisition_search_matches_gpyopts_optimizer():
    """Scoring 1000 candidates and polishing two reaches GPyOpt's five-anchor L-BFGS optimum."""
    rng = np.random.default_rng(3)
    X, Y = data(rng, 15)
    s = GPEISuggester([Dim("continuous"), Dim("categorical", size=3)])
    ours = s.suggest(X, Y, None, seed=4)
    np.random.seed(4)
    opt = GPyOpt.optimization.AcquisitionOptimizer(s.space, optimizer="lbfgs")
    acq = GPyOpt.acquisitions.AcquisitionEI(s._model, s.space, opt)
    theirs, _ = acq.optimize()
    ei = lambda z: -float(acq.acquisition_function(s.space.unzip_inputs(np.atleast_2d(z)))[0, 0])
    assert ei(ours) >= 0.95 * ei(s.space.zip_inputs(np.atleast_2d(theirs))[0])
