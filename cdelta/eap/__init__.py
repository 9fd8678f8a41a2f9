"""EAP-IG: contrast pairs, metrics and the one attribution engine behind edge and node scores."""
