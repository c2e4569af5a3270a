"""Saga: hyperparameter optimization for transfer-learned image classifiers.

``saga.v1`` holds the generated wire API (from ``proto/saga/v1``); ``saga.cli`` the command line.
"""
