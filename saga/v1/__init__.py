"""Generated gRPC stubs of the saga.v1 API (make proto); do not edit."""
