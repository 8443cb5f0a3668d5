"""Credential helpers (``docker-credential-<name>``): found on PATH alone, run without a
shell, under a timeout."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess

from regdata.credentials.credential import _ANONYMOUS, Credential
from regdata.credentials.dockerconfig import _check_helper_name, _show
from regdata.errors import CredentialsError
from regdata.oci.manifest import decode_json
from regdata.oci.reference import DOCKER_HUB, canonical_host

__all__ = []


# Docker's credential stores key Docker Hub by its v1 index URL, not by host.
_DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
_TOKEN_USERNAME = "<token>"


def _helper_path(name: str, host: str) -> str:
    program = f"docker-credential-{_check_helper_name(name, f'credential helper for {host}')}"
    # Relative PATH entries would let the working directory choose who gets our secrets.
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p))
    found = shutil.which(program, path=search)
    if found is None:
        raise CredentialsError(f"credential helper {program} for {host}: not found on PATH")
    return found


def _run_helper(name: str, action: str, stdin: str, host: str, timeout: float) -> tuple[int, str, str]:
    """Run ``docker-credential-<name> <action>``; (exit status, stdout, stderr)."""
    program = _helper_path(name, host)
    label = f"credential helper docker-credential-{name} {action} for {host}"
    try:
        # A session of its own, so a timeout kills the helper's children too and
        # nothing keeps our pipes open after it.
        proc = subprocess.Popen(
            [program, action],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise CredentialsError(f"{label}: cannot run: {exc.strerror or type(exc).__name__}") from None
    try:
        out, err = proc.communicate(stdin.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
        raise CredentialsError(f"{label}: timed out after {timeout:g}s") from None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _first_line_if_not_json(*texts: str) -> str:
    """A sanitised first line of a helper's complaint, unless it could be a JSON payload."""
    for text in texts:
        line = text.strip().split("\n", 1)[0].strip()
        if line and not line.startswith(("{", "[", '"')):
            return f": {_show(line)}"
    return ""


def _helper_get(name: str, host: str, timeout: float) -> Credential:
    server_url = _DOCKER_HUB_SERVER_URL if host == DOCKER_HUB else host
    status, out, err = _run_helper(name, "get", server_url, host, timeout)
    label = f"credential helper docker-credential-{name} get for {host}"
    if status != 0:
        if "credentials not found" in (out + err).lower():
            return _ANONYMOUS
        raise CredentialsError(f"{label}: exit status {status}{_first_line_if_not_json(err, out)}")
    # stdout of a successful get is the secret itself: never quote it.
    try:
        answer = decode_json(out)
    except ValueError:
        raise CredentialsError(f"{label}: answer is not JSON") from None
    if not isinstance(answer, dict):
        raise CredentialsError(f"{label}: answer is not a JSON object")
    username, secret = answer.get("Username", ""), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialsError(f"{label}: answer lacks string 'Username' and 'Secret'")
    if username == _TOKEN_USERNAME:
        return Credential(identity_token=secret or None)
    return Credential(username=username or None, password=secret or None)


def _helper_list(name: str, timeout: float) -> set[str]:
    """Hosts a credential store knows; empty when it cannot say."""
    try:
        status, out, _ = _run_helper(name, "list", "", "(list)", timeout)
        answer = decode_json(out) if status == 0 else {}
    except (CredentialsError, ValueError):
        return set()
    if not isinstance(answer, dict):
        return set()
    return {h for h in (canonical_host(k) for k in answer if isinstance(k, str)) if h}
