"""Mock model servers on 127.0.0.1: the real agent CLIs talk to them in tests and
`fleet coders check`."""
