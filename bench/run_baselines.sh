#!/usr/bin/env bash
# The model runs behind the README's benchmark tables, one after another (each uses both cores).
# The "full" runs use the superset of the default pipeline (4 candidates, all drawn, every failure repaired):
# bench/revote.py derives the default (3 candidates, repair only when none ran) and each stage's
# ablation from their candidates. "default" runs are the default pipeline itself (what `ask` does).
# Every run writes its verdicts to runs/<name>.sqlite as it goes: run this script again after an
# interruption and each run resumes where it stopped (a finished run is re-summarised, not re-asked).
#
#   bench/run_baselines.sh                 # all runs, in priority order
#   bench/run_baselines.sh spider-s300-1.5b-greedy sqleval-postgres-1.5b-default   # only these, in this order
#
# Then: .venv/bin/python bench/summarize_runs.py runs/<a>.sqlite runs/<b>.sqlite  (figures, JSON summaries)
#       .venv/bin/python bench/revote.py runs/<full>.sqlite   (the ablation of samples and repair, from the
#       full run's own candidates: no run with --candidates K or --repair-rounds 0 is needed)
set -uo pipefail
cd "$(dirname "$0")/.."
SW=.venv/bin/sqlwright
DATA=${SQLWRIGHT_DATA:-../shared/data}
mkdir -p runs

# name | arguments of `sqlwright eval`
RUNS=(
  "spider-s300-1.5b-greedy|spider --data $DATA/spider --model qwen2.5-coder-1.5b --greedy --sample 300 --seed 0"
  "spider-s300-1.5b-full|spider --data $DATA/spider --model qwen2.5-coder-1.5b --candidates 4 --repair-all --all-candidates --sample 300 --seed 0"
  "sqleval-postgres-1.5b-greedy|sqleval --data $DATA/sqleval --dialect postgres --model qwen2.5-coder-1.5b --greedy"
  "spider-s100-0.5b-greedy|spider --data $DATA/spider --model qwen2.5-coder-0.5b --greedy --sample 100 --seed 0"
  "spider-s100-0.5b-full|spider --data $DATA/spider --model qwen2.5-coder-0.5b --candidates 4 --repair-all --all-candidates --sample 100 --seed 0"
  "spider-s100-0.5b-full-no-values|spider --data $DATA/spider --model qwen2.5-coder-0.5b --candidates 4 --repair-all --all-candidates --no-values --sample 100 --seed 0"
  "sqleval-sqlite-1.5b-greedy|sqleval --data $DATA/sqleval --dialect sqlite --model qwen2.5-coder-1.5b --greedy"
  "sqleval-postgres-1.5b-default|sqleval --data $DATA/sqleval --dialect postgres --model qwen2.5-coder-1.5b"
  "spider-s300-1.5b-default|spider --data $DATA/spider --model qwen2.5-coder-1.5b --sample 300 --seed 0"
  "spider-dev-0.5b-greedy|spider --data $DATA/spider --model qwen2.5-coder-0.5b --greedy"
  "spider-s100-0.5b-default|spider --data $DATA/spider --model qwen2.5-coder-0.5b --sample 100 --seed 0"
  "spider-s100-0.5b-full-cot|spider --data $DATA/spider --model qwen2.5-coder-0.5b --cot --sample 100 --seed 0"
)

# Names on the command line: those runs, in that order; none: all, in the order above.
declare -A ARGS
names=()
for entry in "${RUNS[@]}"; do ARGS[${entry%%|*}]=${entry#*|}; names+=("${entry%%|*}"); done
if [ $# -gt 0 ]; then names=("$@"); fi
for name in "${names[@]}"; do
  args=${ARGS[$name]:-}
  if [ -z "$args" ]; then echo "unknown run: $name (see RUNS in $0)" >&2; exit 2; fi
  echo "== $name: sqlwright eval $args  ($(date +%H:%M:%S))"
  # shellcheck disable=SC2086
  $SW eval $args --run-file "runs/$name.sqlite" --report "reports/$name" --no-progress --format json \
    > "runs/$name.json" 2> "runs/$name.log" || echo "   failed (exit $?): see runs/$name.log"
done
echo "== done ($(date +%H:%M:%S))"
