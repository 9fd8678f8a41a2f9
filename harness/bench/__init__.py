"""`cdelta bench`: the serving cost of each backend, measured the same way on the same prompts.

prompts (the fixed prompt set) → measure (one backend, in one process) → worker (that process) →
runner (one worker per backend, overhead vs noop, bench.json) → table and cli.
"""
