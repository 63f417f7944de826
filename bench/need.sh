# Sourced by the bench scripts. `need SCRIPT COMMAND[=PACKAGE]...` installs
# the Debian packages of the missing commands with apt-get when run as
# root, and otherwise says what to install and exits 2.
need() {
  local script=$1 spec cmd missing=()
  shift
  for spec in "$@"; do
    cmd=${spec%%=*}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${spec#*=}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "$script needs ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 2
  fi
}

# Sets BIN to the release binaries: $P2P_BIN when bench/run.sh built them
# already, else a `cargo build --release` of this checkout.
p2p_binaries() {
  if [ -n "${P2P_BIN:-}" ]; then
    BIN=$(cd "$P2P_BIN" && pwd)
  else
    cargo build --release --quiet
    BIN=$PWD/target/release
  fi
}
