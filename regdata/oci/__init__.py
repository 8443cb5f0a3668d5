"""The model: references, digests, manifests and configs, as the OCI and Docker specs define them."""
