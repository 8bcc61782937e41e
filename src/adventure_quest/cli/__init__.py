"""The ``aq`` command line: play, inspect, benchmark."""
