#!/usr/bin/env bash
# Installs what code_interpreter's sandbox needs on Debian or Ubuntu: bubblewrap (the jail) and the
# system Python with the libraries a data-analysis assistant expects. The server runs
# /usr/bin/python3 inside the jail, so these are the distribution's packages, not pip's.
# Idempotent: apt-get skips what is already installed.
set -euo pipefail

PACKAGES=(
  bubblewrap
  python3 python3-numpy python3-pandas python3-matplotlib
  python3-scipy python3-sympy python3-openpyxl python3-pil
)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-sandbox: bubblewrap and Python's libraries already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-sandbox: installed ${missing[*]}"
