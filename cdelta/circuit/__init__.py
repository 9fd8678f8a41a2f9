"""Circuits from edge scores: selection, faithfulness, the circuit.json artifact and its plots."""
