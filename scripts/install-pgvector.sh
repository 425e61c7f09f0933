#!/usr/bin/env bash
# Builds and installs pgvector for the local PostgreSQL server from Debian's own source package
# (Debian's bookworm has no pgvector binary for PostgreSQL 15; trixie's source builds cleanly).
# Idempotent: does nothing when the extension is already available.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)}"
if [ -z "$PG_MAJOR" ]; then
  echo "install-pgvector: no PostgreSQL server found under /etc/postgresql" >&2
  exit 1
fi
if [ -f "/usr/share/postgresql/$PG_MAJOR/extension/vector.control" ]; then
  echo "install-pgvector: pgvector already installed for PostgreSQL $PG_MAJOR"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

SRC_LIST=/etc/apt/sources.list.d/assistd-trixie-src.sources
if [ ! -f "$SRC_LIST" ]; then
  $SUDO tee "$SRC_LIST" >/dev/null <<'LIST'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev >/dev/null

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
apt-get source --download-only pgvector >/dev/null 2>&1 || apt-get source --download-only pgvector
dpkg-source -x --no-check ./pgvector_*.dsc src >/dev/null
cd src
make -s PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" OPTFLAGS="" >/dev/null
$SUDO make -s PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" install >/dev/null
echo "install-pgvector: pgvector $(grep default_version vector.control | cut -d"'" -f2) installed for PostgreSQL $PG_MAJOR"
