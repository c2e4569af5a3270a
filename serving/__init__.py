"""Export of trained classifiers to TF Serving's layout, a TF Serving-compatible server, a frame client.

The cores (``export``, ``registry``, ``predictor``) import no grpc and no optimizer code; the
transports (``grpc_api``, ``rest_api``) and the client only convert messages and call them.
"""
