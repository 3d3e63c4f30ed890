"""Local serving: the front end (front.py) and the replicas (replica.py) behind it.

Modules by concern: routing (the table the provider writes), validation (request
bodies), prompts (token counting), metrics (the contract), supervisor (liveness
restarts), autoscale (replica count between bounds), front and replica (the two
processes).
"""
