"""Background work that outlives a request: the reindex job and the alias it moves.

``state`` holds the job's progress file and the locks that every process (web
workers, CLI commands, the job itself) agrees on; ``reindex`` re-encodes the
gallery into a new collection and switches to it; ``launch`` starts that as a
detached process from the web app.
"""
