"""The web console at ``/console``: a page the server renders and a front end that is a client of
the public and admin APIs, with the key the person logs in with (imports console; app.py mounts it)."""
