#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine for the Slurm sweep test (SlurmSweepTests): munged, slurmctld and
# slurmd run as plain background daemons (no systemd) with a minimal configuration: no cgroups (process tracking by
# /proc, no task plugin), no accounting, one partition holding this node with its real CPU count and memory.
# Needs root and Debian's slurmctld, slurmd and munge packages (tests/run installs them). Idempotent: does nothing when
# `sinfo` already answers. Stop it with tests/slurm/stop-local-slurm.sh.
set -euo pipefail

state="${VAEKIT_SLURM_STATE:-/tmp/vaekit-slurm}"
conf=/etc/slurm/slurm.conf
marker="# written by VaeKit tests/slurm/start-local-slurm.sh"

for program in munged slurmctld slurmd sinfo sbatch; do
  command -v "$program" >/dev/null || { echo "error: $program is missing (apt-get install slurmctld slurmd munge)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (slurmd starts jobs as their users)" >&2; exit 1; }

if timeout 10 sinfo -h >/dev/null 2>&1; then
  echo "Slurm already answers:"; sinfo; exit 0
fi
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  echo "error: $conf exists and was not written by this script; not touching a real cluster's configuration" >&2; exit 1
fi

mkdir -p "$state"/{ctld,slurmd,log}

# munge: a key of our own, the daemon as the munge user (it refuses to run as root).
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# This node as slurmd sees it (CPUs, sockets, cores, threads, memory), addressed on the loopback interface.
host="$(hostname -s)"
node="$(slurmd -C | head -n1) NodeAddr=127.0.0.1 State=UNKNOWN"
mkdir -p /etc/slurm
cat > "$conf" <<CONF
$marker
ClusterName=vaekit-local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
$node
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld
slurmd
for _ in $(seq 60); do
  if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "Slurm is up:"; sinfo; exit 0
  fi
  sleep 0.5
done
echo "error: the Slurm node did not come up; logs:" >&2
tail -n 20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
sinfo >&2 || true
exit 1
