"""Object store (MinIO/S3 or a local directory, behind one interface) and dataset manifests."""
