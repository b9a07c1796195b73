"""Running checks: one case through the pipeline (case.py), in a child process with a timeout
(isolation.py), and a suite of cases (suite.py)."""
