#!/usr/bin/env bash
# ZeroSearch's train_grpo.sh arguments, run by this project's trainer: same KEY VALUE pairs, e.g.
#   bash scripts/train_grpo.sh NUM_GPUS_PER_NODE 4 MODEL_PATH Qwen2.5-3B-Instruct DATA_PATH ZeroSearch_dataset \
#     TOTAL_STEPS 203 IP localhost SEARCH_MODE simulate_sft SIMULATION_LLM Simulation_LLM_google_14B \
#     START_THRESHOLD 0 END_THRESHOLD 0.5 SEARCH_ENGINE google MAX_TURNS 5 TOPK 5
# Add --dry-run to print the command and the resolved config. PYTHON picks the interpreter (default python3).
exec "${PYTHON:-python3}" -m zerosearch_rl script train_grpo.sh "$@"
