"""`cdelta eval`: inspect tasks × backends through the `cdelta` model provider, into inspect logs."""
