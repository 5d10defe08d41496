#!/usr/bin/env bash
# Stops the cluster tests/slurm/start-local-slurm.sh started (its slurmd and slurmctld, by their pid files).
set -uo pipefail
state="${VAEKIT_SLURM_STATE:-/tmp/vaekit-slurm}"
for daemon in slurmd slurmctld; do
  [ -f "$state/$daemon.pid" ] && kill "$(cat "$state/$daemon.pid")" 2>/dev/null && echo "stopped $daemon"
done
exit 0
