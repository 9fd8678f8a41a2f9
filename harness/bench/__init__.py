"""`cdelta bench`: the serving cost of each backend, measured the same way on the same prompts.

prompts (the fixed prompt set) → measure (timing one run, in a worker) → worker (one process per
backend, answering commands) → schedule (paired rounds, or sequential) → drive (the parent runs the
steps) → runs (medians and paired ratios vs noop) → runner (bench.json) → table and cli.
"""
