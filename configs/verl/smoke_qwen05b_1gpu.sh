#!/usr/bin/env bash
# GPU check of the veRL integration: 3 GRPO steps of a small instruct policy under veRL 0.9.x on one GPU, the
# searches answered by a prompt-driven simulator (vLLM server on the same GPU), our agent loop and F1 reward.
# Needs: a venv with `pip install -e ".[verl]" "verl[vllm]==0.9.1"`, and model folders on disk (no downloads):
#   POLICY=/models/Qwen2.5-0.5B-Instruct SIMULATOR=/models/Qwen2.5-0.5B-Instruct bash configs/verl/smoke_qwen05b_1gpu.sh
# Prints the per-step metrics veRL logged (critic/score/mean is our F1; zs_* are searches per episode).
set -euo pipefail
POLICY=${POLICY:?set POLICY to a local model folder}
SIMULATOR=${SIMULATOR:-$POLICY}
PY=${PY:-python}
OUT=runs/verl/smoke
mkdir -p "$OUT/data"

# 1. data: the packaged mini QA set as ZeroSearch-format parquet (train and test)
$PY - <<'PY'
from importlib.resources import files
from zerosearch_rl.data import read_examples, write_zerosearch_parquet
examples = read_examples(str(files("zerosearch_rl") / "assets" / "mini_qa.jsonl"))
write_zerosearch_parquet(examples, "runs/verl/smoke/data/train.parquet", "train")
write_zerosearch_parquet(examples, "runs/verl/smoke/data/test.parquet", "test")
PY

# 2. the simulator: an OpenAI-compatible vLLM server on port 6001, a fifth of the GPU
$PY -m vllm.entrypoints.openai.api_server --model "$SIMULATOR" --port 6001 --gpu-memory-utilization 0.2 \
    --max-model-len 4096 > "$OUT/simulator.log" 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT
for i in $(seq 1 120); do
  curl -sf http://127.0.0.1:6001/v1/models > /dev/null && break
  kill -0 $SIM_PID 2>/dev/null || { echo "simulator server died: see $OUT/simulator.log"; exit 1; }
  sleep 2
done
curl -sf http://127.0.0.1:6001/v1/models > /dev/null || { echo "simulator not up after 240 s (http://127.0.0.1:6001)"; exit 1; }

# 3. veRL: our agent loop (configs/verl/agent_loop.yaml) reads our side from $ZEROSEARCH_CONFIG
export ZEROSEARCH_CONFIG=$PWD/configs/verl/zerosearch_smoke.yaml
REWARD=$($PY -c "import zerosearch_rl.integrations.verl.reward as r; print(r.__file__)")
$PY -m verl.trainer.main_ppo --config-path "$PWD/configs/verl" --config-name smoke_qwen05b_1gpu \
    actor_rollout_ref.model.path="$POLICY" reward.custom_reward_function.path="$REWARD" \
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$PWD/configs/verl/agent_loop.yaml" \
    2>&1 | tee "$OUT/train.log"

# 4. the metrics of each step
grep -E "^step:[0-9]+" "$OUT/train.log" | tr ' ' '\n' \
  | grep -E "^step:|critic/score/mean|response_length/mean|num_turns/mean|timing_s/gen|timing_s/step" || true
