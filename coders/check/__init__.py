"""`fleet coders check`: running a real agent CLI through its coder against a mock model server.

Nothing here is part of the `Coder` protocol; the supervisor never imports it.
"""
