#!/usr/bin/env bash
# Set up everything (venv, packages) and run two example DAGs end to end with a real Airflow
# on the embedded default backends (this machine's processes and files): the word count, then
# the ETL over a day of web-server logs (128 MB generated into the storage, a partitioned
# map_reduce, a summary object and a printed report).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh

export AIRFLOW_HOME="$PWD/.airflow-example"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export PYWREN_CONFIG_FILE="$AIRFLOW_HOME/pywren_config.yaml"
mkdir -p "$AIRFLOW_HOME"
# the example's own PyWren storage and runner, next to its Airflow home
cat > "$PYWREN_CONFIG_FILE" <<YAML
localhost:
  storage_dir: $AIRFLOW_HOME/pywren/storage
  runner_dir: $AIRFLOW_HOME/pywren/runner
  runner_idle_timeout: 60
YAML
AIRFLOW=.venv/bin/airflow
"$AIRFLOW" db migrate >/dev/null
errors=$("$AIRFLOW" dags list-import-errors --local --output json 2>/dev/null | tail -n 1)
if [ "$errors" != "[]" ]; then
  "$AIRFLOW" dags list-import-errors --local
  exit 1
fi
echo "DAG import errors: none; running pywren_word_count with airflow dags test ..."
log="$AIRFLOW_HOME/word_count.log"
if ! "$AIRFLOW" dags test pywren_word_count >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "the DAG run failed; full log: $log" >&2
  exit 1
fi
# the top_words task prints the result: show it
sed -n '/words, .* distinct/,/loc=/p' "$log" | grep -v 'loc='
grep -o "DagRun Finished: dag_id=[a-z_]*" "$log" | tail -n 1
grep -o "run_duration=[0-9.]*, state=[a-z]*" "$log" | tail -n 1
echo "full log: $log"

echo "running pywren_web_logs (a 128 MB day of access logs) with airflow dags test ..."
log="$AIRFLOW_HOME/web_logs.log"
if ! "$AIRFLOW" dags test pywren_web_logs >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "the DAG run failed; full log: $log" >&2
  exit 1
fi
# the report task prints the day's report: show it
sed -n '/^web logs of /,/^summary stored at /p' "$log"
grep -o "run_duration=[0-9.]*, state=[a-z]*" "$log" | tail -n 1
echo "full log: $log"
