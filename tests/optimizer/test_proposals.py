"""Proposals in processes of their own (what `saga optimizer` runs): the same points as in the core's
process, and a proposal process that dies costs one random point, not the study."""
import os
import signal

import pytest
from threadpoolctl import threadpool_limits

import optimizer_svc.gp_proposer  # noqa: F401  (loads numpy's and scipy's BLAS before the limits below)
from optimizer_svc.proposals import Engine, ProposalProcesses, Proposals
from optimizer_svc.space import CategoricalParam, FloatParam

PARAMS = (FloatParam("x", 0.0, 1.0), FloatParam("y", 0.0, 1.0), CategoricalParam("c", ["a", "b", "c"]))
GP = Engine(PARAMS, seed=11, initial_points=3, random_only=False, algorithm="gp")


def value(p):
    return -(p["x"] - 0.3) ** 2 - (p["y"] - 0.7) ** 2 + (0.1 if p["c"] == "b" else 0.0)


def run(proposals, n=8, key=("st-a", 0)):
    observed = []
    for number in range(n):
        proposal = proposals.propose(key, GP, number, list(observed), [])
        assert not proposal.failure, proposal.failure
        observed.append((proposal.point, value(proposal.point)))
    return observed


@pytest.fixture
def processes():
    p = ProposalProcesses(processes=2, nice=5)
    yield p
    p.close()


def test_proposal_processes_propose_exactly_what_the_core_would_at_a_lower_priority(processes):
    # the BLAS threads of the caller (the core's process, a machine with more cores) change no bit
    with threadpool_limits(1):
        one_thread = run(Proposals())
    with threadpool_limits(4):
        four_threads = run(Proposals())
    assert run(processes) == one_thread == four_threads
    pids = processes.pids()
    assert len(pids) == 1 and pids[0] != os.getpid()  # one study: one process; the other is never started
    assert os.getpriority(os.PRIO_PROCESS, pids[0]) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)


def test_a_killed_proposal_process_costs_one_random_point_and_is_replaced(processes):
    observed = run(processes, n=4)
    os.kill(processes.pids()[0], signal.SIGKILL)
    lost = processes.propose(("st-a", 0), GP, 4, observed, [])
    assert "ended unexpectedly" in lost.failure and set(lost.point) == {"x", "y", "c"}
    again = processes.propose(("st-a", 0), GP, 5, observed + [(lost.point, value(lost.point))], [])
    assert not again.failure and again.fit_seconds > 0  # a new process, fitting the GP again
    assert len(processes.pids()) == 1


def test_random_proposals_start_no_process(processes):
    engine = Engine(PARAMS, seed=1, initial_points=3, random_only=True, algorithm="gp")
    assert processes.propose(("st-r", 0), engine, 0, [], []).point
    assert processes.pids() == []
