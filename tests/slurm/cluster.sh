#!/usr/bin/env bash
# A real one-node Slurm on the loopback for the test suite (tests/slurm/conftest.py) and by hand.
#
#   tests/slurm/cluster.sh install   install Debian's slurm-wlm and munge with apt-get if absent (root)
#   tests/slurm/cluster.sh start     install if needed, write the config, start munged, slurmctld, slurmd,
#                                    wait until the node is idle
#   tests/slurm/cluster.sh stop      cancel the jobs, stop the daemons this script started, wait for them to end
#   tests/slurm/cluster.sh status    exit 0 if all three daemons run, 1 if not
#   tests/slurm/cluster.sh env       print the shell line that points Slurm's clients at this cluster
#
# Everything lives in one state folder, MTLSWIN_SLURM_DIR (default /tmp/mtlswin-slurm): slurm.conf,
# the munge key, socket and pid files, the spool and state folders, the logs (*.log). Nothing under /etc is
# written, and a system munged (/run/munge) is left alone: Slurm finds this cluster's munged through
# AuthInfo=socket=... in slurm.conf, and clients find slurm.conf through SLURM_CONF.
# Ports: MTLSWIN_SLURM_PORT (default 16817) for slurmctld, the next one for slurmd; not Slurm's 6817/6818,
# so that a real Slurm on the host does not clash. Start and stop are idempotent.
#
# The node: NodeName=localhost on 127.0.0.1, CPUs = nproc, RealMemory = free -m less a margin, one partition
# `debug`. CPUs and memory are consumable (CR_CPU_Memory) and a job without --mem gets RealMemory / CPUs, so
# 1-CPU jobs run side by side. No cgroups (proctrack/linuxproc, task/none), no accounting (no slurmdbd):
# `sacct` fails, a finished job is seen with `scontrol show job` for MinJobAge seconds.
set -euo pipefail

STATE=${MTLSWIN_SLURM_DIR:-/tmp/mtlswin-slurm}
PORT=${MTLSWIN_SLURM_PORT:-16817}
CONF=$STATE/slurm.conf
NODE=localhost
PARTITION=debug
WAIT_S=${MTLSWIN_SLURM_WAIT_S:-60}
export SLURM_CONF=$CONF

PROGRAMS=(munged mungekey slurmctld slurmd slurmstepd sbatch squeue sinfo scontrol scancel)

log() { echo "cluster.sh: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Debian puts the daemons in /usr/sbin, which a non-root PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

installed() {
	local p
	for p in "${PROGRAMS[@]}"; do
		command -v "$p" >/dev/null 2>&1 || return 1
	done
}

cmd_install() {
	if installed; then
		return 0
	fi
	if [[ $(id -u) != 0 ]]; then
		log "slurm-wlm and munge are not installed and installing them needs root"
		return 3
	fi
	local t0
	t0=$(now)
	local apt=(apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 slurm-wlm munge)
	export DEBIAN_FRONTEND=noninteractive
	# a fresh machine may have no package lists yet, or stale ones: update once, then try again
	if ! "${apt[@]}" >"$STATE/apt.log" 2>&1; then
		apt-get update -qq >>"$STATE/apt.log" 2>&1 || true
		if ! "${apt[@]}" >>"$STATE/apt.log" 2>&1; then
			tail -n 30 "$STATE/apt.log" >&2
			log "apt-get install slurm-wlm munge failed (log: $STATE/apt.log)"
			return 1
		fi
	fi
	installed || {
		log "slurm-wlm and munge installed but some of ${PROGRAMS[*]} are missing"
		return 1
	}
	log "installed slurm-wlm and munge in $(since "$t0") s"
}

# The pid in $STATE/$1.pid if that process is alive and is $1 (not a recycled pid).
running_pid() {
	local pid
	pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1"* ]] || return 1
	# an ended daemon whose parent (init here) has not reaped it yet is a zombie with the same name
	[[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
	echo "$pid"
}

write_config() {
	local user cpus mem_total margin mem
	user=$(id -un)
	cpus=$(nproc)
	mem_total=$(free -m | awk '/^Mem:/ { print $2 }')
	margin=$((mem_total / 10 > 1024 ? 1024 : mem_total / 10)) # slurmd drains a node that reports less than this
	mem=$((mem_total - margin))
	mkdir -p "$STATE/ctld" "$STATE/spool"
	cat >"$CONF.new" <<EOF
# Written by tests/slurm/cluster.sh: a one-node Slurm on the loopback for mtlswin's tests.
ClusterName=mtlswin
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again this many seconds after the requeue (Slurm's default is 120)
AuthInfo=socket=$STATE/munge.socket,cred_expire=5
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((mem / cpus))
SchedulerType=sched/backfill
# a requeued job waits for its BeginTime: look for it every second, not every 30 s (backfill) or 60 s (main)
SchedulerParameters=bf_interval=1,sched_interval=1
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
# without accounting a finished job is known only to slurmctld, for MinJobAge seconds
MinJobAge=120
KillWait=5
InactiveLimit=0
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
	rm -f "$STATE/cgroup.conf"
	mv "$CONF.new" "$CONF"
}

start_munged() {
	running_pid munged >/dev/null && return 0
	if [[ ! -s $STATE/munge.key ]]; then
		mungekey --create --keyfile="$STATE/munge.key" --bits=1024
	fi
	chmod 600 "$STATE/munge.key"
	munged --key-file="$STATE/munge.key" --socket="$STATE/munge.socket" --pid-file="$STATE/munged.pid" \
		--log-file="$STATE/munged.log" --seed-file="$STATE/munged.seed"
}

start_slurmctld() {
	running_pid slurmctld >/dev/null && return 0
	# -c: a fresh cluster, no jobs or node states restored from a run before
	slurmctld -c -f "$CONF"
}

start_slurmd() {
	running_pid slurmd >/dev/null && return 0
	slurmd -f "$CONF" -N "$NODE"
}

show_logs() {
	local f
	for f in munged slurmctld slurmd; do
		if [[ -f $STATE/$f.log ]]; then
			echo "--- tail of $STATE/$f.log" >&2
			tail -n 20 "$STATE/$f.log" >&2
		fi
	done
}

wait_idle() {
	local deadline state
	deadline=$(($(date +%s) + WAIT_S))
	while :; do
		state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
		case $state in
		idle | mixed | allocated | completing) return 0 ;;
		esac
		if (($(date +%s) >= deadline)); then
			log "node $NODE is not idle after $WAIT_S s (sinfo says '${state:-nothing}')"
			show_logs
			return 1
		fi
		sleep 0.2
	done
}

cmd_start() {
	mkdir -p "$STATE"
	chmod 755 "$STATE" # munged wants its socket folder open to all (x) and writable by its owner only
	local t0
	t0=$(now)
	cmd_install
	log "install: $(since "$t0") s"
	t0=$(now)
	write_config
	if ! { start_munged && start_slurmctld && start_slurmd; }; then
		log "a daemon failed to start"
		show_logs
		return 1
	fi
	wait_idle
	log "start to idle: $(since "$t0") s (SLURM_CONF=$CONF, partition $PARTITION)"
}

stop_daemon() {
	local pid i
	pid=$(running_pid "$1") || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		running_pid "$1" >/dev/null || return 0
		sleep 0.1
	done
	log "$1 ($pid) did not end in 10 s after SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
	local t0 i
	t0=$(now)
	if running_pid slurmctld >/dev/null && running_pid slurmd >/dev/null; then
		# jobs' processes belong to slurmstepd, not slurmd: cancel them before slurmd goes
		scancel --full --partition="$PARTITION" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			[[ -z $(squeue -h -t running,completing,configuring -o %i 2>/dev/null) ]] && break
			sleep 0.1
		done
	fi
	stop_daemon slurmd
	stop_daemon slurmctld
	stop_daemon munged
	log "stop: $(since "$t0") s"
}

cmd_status() {
	local d ok=0
	for d in munged slurmctld slurmd; do
		if pid=$(running_pid "$d"); then
			echo "$d running ($pid)"
		else
			echo "$d stopped"
			ok=1
		fi
	done
	return $ok
}

case ${1:-} in
install)
	mkdir -p "$STATE"
	cmd_install
	;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) echo "export SLURM_CONF=$CONF" ;;
*)
	echo "usage: $0 install|start|stop|status|env   (state folder: MTLSWIN_SLURM_DIR=$STATE)" >&2
	exit 2
	;;
esac
