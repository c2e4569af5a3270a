"""Saga on one machine: a supervisor for local service processes (``saga up``) and the end-to-end
demo pipeline (``saga demo``)."""
