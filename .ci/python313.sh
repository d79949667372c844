#!/bin/sh
# Builds CPython 3.13 into .tools/python3.13 for `make test-py313`.
#
# Why from source: these machines run Debian 12, which packages no Python 3.13,
# and PyPI publishes no interpreter. Debian 13 (trixie) ships 3.13, and its
# source package's .orig tarball is python.org's release, so the build takes it
# from the same Debian mirror the rest of CI installs from, checked the way apt
# checks it: trixie's InRelease is verified with the archive keyring Debian 12
# already has, Sources.xz against the hash InRelease signs, and the tarball
# against the hash Sources.xz names. A plain build (no PGO) takes 3-4 minutes
# on two cores; the test run is about correctness, not speed.
set -eu

PREFIX="${1:-.tools/python3.13}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

if [ -x "$PREFIX/bin/python3.13" ]; then
    exit 0
fi
for tool in curl gpgv xz make gcc; do
    command -v "$tool" >/dev/null || { echo "python313.sh: needs $tool" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd_prefix="$(pwd)"

curl -fsS -o "$work/InRelease" "$MIRROR/dists/trixie/InRelease"
gpgv --keyring "$KEYRING" --output "$work/Release" "$work/InRelease" 2>/dev/null \
    || { echo "python313.sh: trixie's InRelease does not verify with $KEYRING" >&2; exit 1; }

sources_sha="$(awk '$3 == "main/source/Sources.xz" && length($1) == 64 {print $1; exit}' "$work/Release")"
curl -fsS -o "$work/Sources.xz" "$MIRROR/dists/trixie/main/source/Sources.xz"
echo "$sources_sha  $work/Sources.xz" | sha256sum -c --quiet -

# The python3.13 stanza: its Directory and the .orig tarball's sha256 line.
xz -dc "$work/Sources.xz" | awk '
    /^Package: / { in_pkg = ($2 == "python3.13") }
    in_pkg && /^Directory: / { print "dir", $2 }
    in_pkg && /^Checksums-Sha256:/ { in_sums = 1; next }
    in_pkg && in_sums && /^ / && $3 ~ /\.orig\.tar\.xz$/ { print "orig", $1, $3 }
    /^[^ ]/ && !/^Checksums-Sha256:/ { in_sums = 0 }
' > "$work/stanza"
dir="$(awk '$1 == "dir" {print $2; exit}' "$work/stanza")"
sha="$(awk '$1 == "orig" {print $2; exit}' "$work/stanza")"
name="$(awk '$1 == "orig" {print $3; exit}' "$work/stanza")"
[ -n "$dir" ] && [ -n "$sha" ] && [ -n "$name" ] \
    || { echo "python313.sh: no python3.13 source in trixie's Sources.xz" >&2; exit 1; }

echo "python313.sh: building $name (Debian trixie) into $PREFIX"
curl -fsS -o "$work/$name" "$MIRROR/$dir/$name"
echo "$sha  $work/$name" | sha256sum -c --quiet -
mkdir "$work/src"
tar -xJf "$work/$name" -C "$work/src" --strip-components=1
case "$PREFIX" in /*) target="$PREFIX" ;; *) target="$cd_prefix/$PREFIX" ;; esac
(
    cd "$work/src"
    ./configure --prefix="$target" --with-ensurepip=install -q > "$work/configure.log" 2>&1 \
        || { tail -20 "$work/configure.log" >&2; exit 1; }
    make -j"$(nproc)" -s > "$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
    make -s install > "$work/install.log" 2>&1 || { tail -20 "$work/install.log" >&2; exit 1; }
)
"$target/bin/python3.13" -c "import ssl, sqlite3, lzma, bz2, ctypes, zlib"
echo "python313.sh: $("$target/bin/python3.13" -VV)"
