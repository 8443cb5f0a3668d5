# Sourced by scripts/setup: chooses the Python that regdata is installed into, as $PY.
#
# A virtual environment or conda environment that is already active is used as it is.
# Otherwise the project gets its own in .venv (git-ignored): Debian 12's and Ubuntu
# 23.04's python3 refuse system-wide pip installs (PEP 668), and installing into the
# user's site would mix with their other projects. Never --break-system-packages.

regdata_in_env() {
  [ -n "${CONDA_PREFIX:-}" ] && return 0
  "$1" -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)' 2>/dev/null
}

regdata_choose_python() {
  local base
  base=$(command -v python3 || true)
  if [ -z "$base" ]; then
    echo "regdata needs Python 3.11 or newer: sudo apt-get install python3 python3-venv" >&2
    return 1
  fi
  if ! "$base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "regdata needs Python 3.11 or newer; $base is $("$base" --version 2>&1)" >&2
    return 1
  fi
  if regdata_in_env "$base"; then
    PY=$base
    return 0
  fi
  PY=$PWD/.venv/bin/python
  if [ -x "$PY" ] && "$PY" -c 'import sys' 2>/dev/null; then
    return 0
  fi
  echo "creating a virtual environment in $PWD/.venv" >&2
  rm -rf .venv
  if ! "$base" -m venv .venv >/tmp/regdata-venv.log 2>&1; then
    # Debian ships venv's ensurepip in a package of its own.
    local pkg
    pkg="python3-venv python$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    if [ "$(id -u)" != 0 ]; then
      cat /tmp/regdata-venv.log >&2
      echo "python3 cannot make a virtual environment; run: sudo apt-get install $pkg" >&2
      return 1
    fi
    echo "installing $pkg" >&2
    regdata_apt_install $pkg
    rm -rf .venv
    "$base" -m venv .venv
  fi
}

# Debian packages, when missing: installed when root, else the exact command to run.
regdata_apt_install() {
  local need=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
    return 1
  fi
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Their packaged services are not ours: the tests and the demo start their own on free ports.
  for pkg in "${need[@]}"; do
    case "$pkg" in
      docker-registry|memcached|tinyproxy) (service "$pkg" stop || true) >/dev/null 2>&1 ;;
    esac
  done
}
