#!/usr/bin/env bash
# Run a command (the test suite) so that the servers it starts are unreachable
# from outside and cannot outlive it:
# - in a private network namespace with only loopback, where one can be made
#   (root on CI); elsewhere as is;
# - on exit, even on failure or interruption, every process still carrying this
#   run's tag in its environment is stopped, by pid (TERM, then KILL).
set -uo pipefail

tag="lookalike-ci-$$-$RANDOM"
export CI_RUN_TAG="$tag"

tagged_pids() {
  local environ pid
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}; pid=${pid%/environ}
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
    if { tr '\0' '\n' < "$environ"; } 2>/dev/null | grep -qx "CI_RUN_TAG=$tag"; then echo "$pid"; fi
  done
}

stop_leftovers() {
  local pids signal
  for signal in TERM KILL; do
    pids=$(tagged_pids)
    [ -z "$pids" ] && return
    for pid in $pids; do
      echo "isolated.sh: $signal leftover $pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)" >&2
      kill "-$signal" "$pid" 2>/dev/null
    done
    sleep 3
  done
}
trap stop_leftovers EXIT
trap 'exit 130' INT TERM

loopback_up='ip link set lo up 2>/dev/null || python3 -c "
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fcntl.ioctl(s, 0x8914, struct.pack(\"16sH22x\", b\"lo\", 0x1 | 0x8 | 0x40))"'

if unshare --net -- true 2>/dev/null; then
  unshare --net -- bash -c "$loopback_up && exec \"\$@\"" isolated "$@"
else
  echo "isolated.sh: cannot create a network namespace; servers still bind 127.0.0.1" >&2
  "$@"
fi
