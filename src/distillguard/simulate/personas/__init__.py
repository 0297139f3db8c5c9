"""Persona models: one module per kind of API customer, genuine or harvesting.

Genuine: chat_user, corporate_nat, app_backend, batch_pipeline, eval_run,
synthetic_data_dev, reseller.  Harvesting (all built on :mod:`.campaign`):
naive_bulk, hydra, hydra_mixed_reseller, low_and_slow, reasoning_coercion,
benchmark_sweep, logprob_harvest, multi_sample, tool_use_harvest,
rubric_grading, model_pivot.
"""
