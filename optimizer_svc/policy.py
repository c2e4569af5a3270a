"""Which roles may call which Optimizer method (saga.security.guard checks it on every call).

A worker leases, reports and completes (and only trials it holds: the lease id, which no read
call returns, is the proof); a client creates, reads and stops studies; a reader reads. The Python
API's ask/tell studies lease and complete on the user's behalf: give such a token both roles
(``client,worker``).
"""
from __future__ import annotations

READ = ("reader", "client")
POLICY: dict[str, tuple[str, ...]] = {
    "CreateStudy": ("client",),
    "StopStudy": ("client",),
    # Workers ask whether their study is still active (trainer_svc.worker, --exit-when-done).
    "GetStudy": (*READ, "worker"), "ListStudies": (*READ, "worker"),
    "GetTrial": READ, "ListTrials": READ, "GetBestTrial": READ,
    "WatchStudy": READ,
    "LeaseTrial": ("worker",), "ReportProgress": ("worker",), "CompleteTrial": ("worker",),
}
