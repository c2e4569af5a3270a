"""The optimizer service: studies, phases, GP proposals, trial leases, stopping rules, durable state.

The core (``core.OptimizerCore``) imports no grpc; ``servicer`` translates the wire API to it.
"""
