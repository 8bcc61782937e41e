"""The composition root: settings in, wired parts out, role by role.

``parts.py`` opens what a process asks for (stores, queue, read database, cache) and closes it;
``roles.py`` says what each role runs; ``serve.py`` runs ``aq serve``; ``pipeline.py`` the
processing path; ``write.py`` the write side for the CLI. Nothing is wired at import time.
"""
