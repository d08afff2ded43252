"""Self-supervised methods; each exposes a pure train step."""
