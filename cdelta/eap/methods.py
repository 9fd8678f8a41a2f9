"""Names of the attribution methods and interventions, importable without torch (the CLI lists them)."""
from __future__ import annotations

METHODS: tuple[str, ...] = ("EAP", "EAP-IG-inputs", "EAP-IG-activations")
INTERVENTIONS: tuple[str, ...] = ("patching", "zero", "mean")
