"""The pieces of ``benchmarks/evaluate.py``, one small module per stage:

    dataset      which models (family, seed, index, input size, split), measured twice in two
                 passes of different order, cached in the measurement store
    graph_stats  whole-graph features: FLOPs, memory access cost (MAC), op counts
    baselines    FLOPs / FLOPs+MAC linear regressions, model-level XGBoost, operator-level sum
    lofo         leave-one-family-out: cost models retrained without one family's kernel samples
    metrics      ±5/10/15 % accuracy, RMSE, RMSPE, noise ceiling; per family and overall
    report       evaluate-<backend>.json, .md (README table) and the scatter plot
"""
