"""Background jobs: the worker that runs them and the jobs Nexus itself ships.

The worker class lives here, not in ``infrastructure/``, because it runs jobs
inside the app (``infrastructure/queue.py`` only builds queues). Job bodies
take ids and small values, reload what they need, and are safe to run twice.
"""
