"""Test bed of regdata: real registry servers, a token server and an image builder.

Nothing here imports regdata: the test bed must stay an independent witness of what
a registry serves, so a bug in the library cannot hide itself in its own tests.
"""
