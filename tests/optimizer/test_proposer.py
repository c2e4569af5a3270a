"""The proposers: uniform sampling, Saga's GP (its maths, parallel proposals, bounds) and the algorithm field."""
import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from optimizer_svc.acquisition import log_ei, log_h
from optimizer_svc.errors import InvalidArgument
from optimizer_svc.gp import Features, GaussianProcess, warp
from optimizer_svc.gp_proposer import GPProposer
from optimizer_svc.proposer import PENDING_DISTANCE, GPyOptProposer, RandomProposer, derive_seed, make_proposer
from optimizer_svc.space import CategoricalParam, FloatParam, IntParam, decode, encode, sample
from optimizer_svc.spec import SEED_BACKBONES, parse_spec

from .conftest import small_spec

BACKBONE = CategoricalParam("backbone", SEED_BACKBONES)
LAYER = IntParam("layer", 0, 4)


def _uniform(counts: np.ndarray) -> float:
    """p-value of a chi-square test that ``counts`` are equally likely."""
    return float(scipy.stats.chisquare(counts).pvalue)


def _counts(values, choices) -> np.ndarray:
    return np.array([sum(v == c for v in values) for c in choices])


def test_random_sampling_gives_every_choice_and_integer_probability_one_over_k():
    rng = np.random.default_rng(0)
    draws = [sample([BACKBONE, LAYER], rng) for _ in range(9000)]
    backbones = _counts([d["backbone"] for d in draws], SEED_BACKBONES)
    layers = _counts([d["layer"] for d in draws], range(5))
    # round(u * (k - 1)) gave the first and last choice half the others' share: p < 1e-30 here
    assert _uniform(backbones) > 1e-3 and _uniform(layers) > 1e-3
    assert abs(backbones[0] / 9000 - 1 / 9) < 0.02 and abs(layers[-1] / 9000 - 1 / 5) < 0.02


def test_the_initial_design_and_the_decoding_are_uniform_too():
    design = []
    for seed in range(300):
        p = GPProposer([BACKBONE, LAYER, FloatParam("lr", 1e-4, 1.0, "log")], derive_seed(seed), initial_points=5)
        design += [p.propose(n, [], []) for n in range(3)]
    assert _uniform(_counts([d["backbone"] for d in design], SEED_BACKBONES)) > 1e-3
    assert _uniform(_counts([d["layer"] for d in design], range(5))) > 1e-3
    # the GP's decoding: equal-width buckets of [0, 1], each value encoded at its bucket's centre
    u = np.linspace(0, 1, 9 * 5 * 40, endpoint=False) + 1 / (9 * 5 * 80)
    decoded = [decode([BACKBONE, LAYER], np.array([x, x])) for x in u]
    assert set(_counts([d["backbone"] for d in decoded], SEED_BACKBONES)) == {200}
    assert set(_counts([d["layer"] for d in decoded], range(5))) == {360}
    for point in decoded[::37]:
        assert decode([BACKBONE, LAYER], encode([BACKBONE, LAYER], point)) == point


def test_log_expected_improvement_is_finite_and_exact_where_ei_is_representable():
    z = np.array([-3.0, -0.5, 0.0, 2.0])
    direct = np.log(scipy.stats.norm.pdf(z) + z * scipy.stats.norm.cdf(z))
    assert np.allclose(log_h(z), direct, rtol=1e-9)
    far = log_h(np.array([-40.0, -1e4]))
    assert np.all(np.isfinite(far)) and far[0] > far[1]   # EI underflows to 0 there; LogEI still orders
    # mean 0 below the best 1, sd 2: z = -0.5
    assert log_ei(np.array([0.0]), np.array([4.0]), 1.0)[0] == pytest.approx(math.log(2) + direct[1], rel=1e-9)


def test_gp_gradients_match_finite_differences():
    params = [FloatParam("x", 0.0, 1.0), CategoricalParam("c", ("a", "b", "c")), FloatParam("y", 0.0, 1.0)]
    f = Features(params)
    rng = np.random.default_rng(1)
    U = f.snap(rng.random((15, 3)))
    y = warp(np.sin(6 * U[:, 0]) + U[:, 2] + (U[:, 1] > 0.5))
    gp = GaussianProcess(f.groups, f.n_groups)
    Z = f(U)
    theta = gp.prior_mean + 0.3
    value, grad = gp._neg_log_posterior(theta, Z, y)
    numeric = scipy.optimize.approx_fprime(theta, lambda t: gp._neg_log_posterior(t, Z, y)[0], 1e-6)
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-4)
    gp.fit(Z, y)
    z0 = f(np.array([[0.3, 0.5, 0.7]]))[0]
    mean, var, dmean, dvar = gp.predict_grad(z0)
    assert (mean, var) == pytest.approx(tuple(a[0] for a in gp.predict(z0[None, :])), rel=1e-9)
    for col in f.continuous_columns():
        e = np.zeros_like(z0)
        e[col] = 1e-6
        m1, v1 = gp.predict((z0 + e)[None, :])
        assert dmean[col] == pytest.approx((m1[0] - mean) / 1e-6, rel=1e-3, abs=1e-4)
        assert dvar[col] == pytest.approx((v1[0] - var) / 1e-6, rel=1e-3, abs=1e-4)


def _run(proposer, f, evaluations: int, in_flight: int = 1):
    """Asks/tells with ``in_flight`` trials running, as the core does with parallel workers."""
    observations, running, number, asked = [], [], 0, []
    while len(observations) < evaluations:
        while len(running) < in_flight:
            point = proposer.propose(number, observations, [p for p in running])
            number += 1
            running.append(point)
            asked.append((point, list(running[:-1])))
        done = running.pop(0)
        observations.append((done, f(done)))
    return observations, asked


def _shifted_sphere(p):   # maximised at x = 0.62, y = 0.31 of the unit box (inside, off centre)
    return -((p["x"] - 0.62) ** 2 + (p["y"] - 0.31) ** 2)


XY = [FloatParam("x", 0.0, 1.0), FloatParam("y", 0.0, 1.0)]


def test_saga_gp_finds_an_interior_optimum_without_hugging_the_bounds():
    observations, _ = _run(make_proposer(XY, seed=3, initial_points=5, random_only=False), _shifted_sphere, 20)
    assert max(v for _, v in observations) > -1e-3
    on_bound = sum(min(abs(p[n] - 0.0), abs(p[n] - 1.0)) < 1e-6 for p, _ in observations for n in ("x", "y"))
    assert on_bound <= 4   # of 40 coordinates; EI on an almost linear model put most of them on a bound
    rand, _ = _run(RandomProposer(XY, 3), _shifted_sphere, 20)
    assert max(v for _, v in observations) > max(v for _, v in rand)


def test_parallel_proposals_keep_apart_from_running_trials_without_random_fallbacks():
    proposer = GPProposer(XY + [BACKBONE], seed=5, initial_points=5)
    f = lambda p: _shifted_sphere(p) + (0.1 if p["backbone"] == "ResNet50" else 0.0)
    _, asked = _run(proposer, f, 28, in_flight=8)
    for point, running in asked:
        u = encode(proposer.params, point)
        assert all(np.max(np.abs(u - encode(proposer.params, r))) >= PENDING_DISTANCE for r in running)
    assert proposer.random_fallbacks == 0


def test_proposals_are_deterministic_per_seed():
    def points(seed):
        obs, _ = _run(make_proposer(XY + [LAYER], seed=seed, initial_points=3, random_only=False),
                      lambda p: _shifted_sphere(p) - p["layer"] / 10, 8, in_flight=2)
        return [p for p, _ in obs]
    assert points(1) == points(1) and points(1) != points(2)


def test_the_algorithm_field_selects_the_engine_and_refuses_unknown_names(core):
    assert parse_spec(small_spec()).budget.algorithm == "gp"
    assert parse_spec(small_spec(budget={"algorithm": "gpyopt"})).budget.algorithm == "gpyopt"
    with pytest.raises(InvalidArgument, match=r"budget\.algorithm: must be 'gp', 'gpyopt' or 'random', got 'tpe'"):
        parse_spec(small_spec(budget={"algorithm": "tpe"}))
    assert isinstance(make_proposer(XY, seed=1, initial_points=2, random_only=False, algorithm="gpyopt"),
                      GPyOptProposer)
    assert isinstance(make_proposer(XY, seed=1, initial_points=2, random_only=False, algorithm="random"),
                      RandomProposer)
    study = core.create_study(small_spec(budget={"algorithm": "gpyopt", "parallel_trials": 1}))
    core.lease_trial("w")
    assert all(isinstance(p, GPyOptProposer) for (sid, _), p in core.proposals._proposers.items() if sid == study.id)


def test_extreme_or_equal_values_still_give_a_valid_proposal():
    points = [{"x": 0.1, "y": 0.2}, {"x": 0.5, "y": 0.5}, {"x": 0.9, "y": 0.1}]
    for values in ([1e300, -1e300, 0.0], [0.5, 0.5, 0.5]):
        point = GPProposer(XY, seed=1, initial_points=2).propose(3, list(zip(points, values)), [])
        assert all(0.0 <= point[n] <= 1.0 for n in ("x", "y")) and point not in points
