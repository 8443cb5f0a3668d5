"""Registry credentials, read the way Docker and podman read them.

A :class:`Credential` is what one registry host gets: a username and
password, an identity (refresh) token, or a registry (bearer) token.  A
:class:`Credentials` is the set for many hosts, looked up by host with
:meth:`Credentials.for_host`.

Sources:

* Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
  ``~/.docker/config.json``): ``auths``, ``credHelpers`` and ``credsStore``.
* containers' ``auth.json`` as podman, buildah and skopeo write it
  (``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json`` and
  ``$XDG_CONFIG_HOME/containers/auth.json``, ``~/.config`` by default).  It is
  read with the same parser as ``config.json``.
* A plain mapping given in code.

Hosts are normalised with :func:`regdata.oci.reference.canonical_host`: scheme and
path are dropped, case is folded and Docker Hub's aliases
(``index.docker.io``, ``registry-1.docker.io``,
``https://index.docker.io/v1/``) become ``docker.io``.  The port is kept, so
``localhost:5000`` and ``localhost`` are different hosts.

An ``auth.json`` key may name a namespace (``quay.io/org``); podman then uses
it for that namespace only.  regdata keeps it simple and applies such an entry
to the whole host; an entry keyed by the bare host (or by a URL) wins over a
namespaced one, and among several namespaced ones the first in the file wins.

Credential helpers (``docker-credential-<name>``) run only when a host is
asked for, are found through ``PATH`` alone, run without a shell and under a
timeout, and their answers are kept in memory for the life of the
:class:`Credentials`.

Nothing here puts a secret in a message or a ``repr``.

Modules: ``credential.py`` (one host's credential), ``dockerconfig.py`` (the
files), ``helpers.py`` (credential helpers), ``credentials.py`` (the set).
"""

from regdata.credentials.credential import Credential
from regdata.credentials.credentials import DEFAULT_HELPER_TIMEOUT, Credentials
from regdata.credentials.dockerconfig import auth_file_paths, docker_config_path

__all__ = [
    "DEFAULT_HELPER_TIMEOUT",
    "Credential",
    "Credentials",
    "auth_file_paths",
    "docker_config_path",
]
