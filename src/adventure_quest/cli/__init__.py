"""The ``aq`` command line: serve, play, process, inspect, repair, benchmark."""
