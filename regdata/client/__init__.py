"""The client: a Remote per registry host, scans of repositories, the Registry over them."""
