#!/usr/bin/env bash
# The whole chain from an installation alone: run by test_standalone.py inside
# `unshare --mount --propagation private`, after which the checkout the installation was made
# from is hidden under an empty tmpfs (as if deleted). Root runs the signer and the daemon from
# PREFIX/sbin; nobody, with nothing but `source PREFIX/bin/datacrumbs_setup`, makes a signed
# probe file, runs the job and summarises the trace. Leaves in WORK: workload.out (pid, fd),
# summary.json, and the logs.
#   standalone_chain.sh PREFIX CHECKOUT WORK WORKLOAD K S
set -euo pipefail
prefix=$1 checkout=$2 work=$3 workload=$4 blocks=$5 size=$6

mount -t tmpfs -o mode=0700 datacrumbs-hidden-checkout "$checkout"
if [[ -n $(ls -A "$checkout") ]]; then echo "the checkout is still visible" >&2; exit 1; fi

run_dir=$work/run
settings=(DATACRUMBS_SERVER_RUN_DIR="$run_dir" DATACRUMBS_SERVER_RUN_ID_FILE="$run_dir/datacrumbs.runid"
          DATACRUMBS_SIGN_PROBES_SOCKET_PATH="$run_dir/datacrumbs_sign_probes.sock"
          DATACRUMBS_TRACE_DIR_PATTERN="$work/traces/%USER%")
as_nobody() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env -i PATH=/usr/bin:/bin HOME="$work/home" "${settings[@]}" \
        bash -c "source '$prefix/bin/datacrumbs_setup' && $1"
}
as_root() {
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${settings[@]}" "${@:2}" \
        bash -c "source '$prefix/bin/datacrumbs_setup' && exec $1"
}
wait_for() {  # wait_for SECONDS TEST...
    local deadline=$((SECONDS + $1))
    until "${@:2}"; do
        if ((SECONDS > deadline)); then echo "timed out: ${*:2}" >&2; return 1; fi
        sleep 0.1
    done
}
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true; wait' EXIT

as_root datacrumbs_sign_probes >"$work/signer.log" 2>&1 &
pids+=($!)
wait_for 30 grep -q "listening on" "$work/signer.log"

as_nobody "datacrumbs_probe_configurator '$work/home/probes.yaml' '$work/home/probes.json.gz'" \
    >"$work/configurator.out"

as_root "datacrumbs '$work/home/probes.json.gz' standalone" DATACRUMBS_USER=nobody \
    >"$work/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
wait_for 60 test -e "$run_dir/datacrumbs-standalone.ready"
trace=$(sed -n 2p "$run_dir/datacrumbs-standalone.ready")

as_nobody "'$workload' '$work/home/data' $blocks $size" >"$work/workload.out"

kill -TERM "$daemon"
wait "$daemon"
as_nobody "datacrumbs_summary --json --pid $(cut -d' ' -f1 "$work/workload.out") '$trace'" \
    >"$work/summary.json"
