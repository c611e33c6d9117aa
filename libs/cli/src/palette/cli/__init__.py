"""The ``palette`` command: runs the one-machine system and drives the REST API.

Every resource command is a client of the public REST API and its SSE stream
(``palette.cli.api``); ``palette up``/``down``/``status``/``logs`` run the
one-machine system (``palette.cli.local``) with the dev stack's code.
"""
