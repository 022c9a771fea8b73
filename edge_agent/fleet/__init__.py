"""Fleet tooling run centrally: PKI for MQTT TLS and device provisioning."""
