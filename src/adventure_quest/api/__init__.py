"""The HTTP API, and only HTTP: routes, auth, errors, OpenAPI, the fast lanes, the server.

Routes call the write side (app/) and the read side (queries/) they are given in an
``ApiContext``; which adapters stand behind them is the composition root's choice (bootstrap/).
"""
