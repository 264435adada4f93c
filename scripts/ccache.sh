# Sourced by the build scripts: compile through ccache when it is installed (scripts/setup.sh
# installs it). CCACHE_BASEDIR makes paths inside the checkout relative in ccache's hashes,
# so a fresh clone elsewhere on the same machine (a CI run) reuses earlier compilations;
# Release builds carry no debug info, so nothing that ends up in a binary names the folder.
# Sets the array `launcher` to the CMake arguments to pass at configure time.
launcher=()
if command -v ccache >/dev/null 2>&1 && [ "${VEIL_CCACHE:-1}" != 0 ]; then
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$here}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
