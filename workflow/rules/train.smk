rule run_table:
    """Every unique run, every parameter, and the studies that use it."""
    output:
        "results/runs.tsv",
    params:
        plan=PLAN,
    localrule: True
    log:
        "logs/run_table.log",
    script:
        "../scripts/run_table.py"


rule train:
    """One run: fit the model, writing history.csv epoch by epoch; resumes after a kill."""
    input:
        cache=run_cache,
    output:
        history="results/runs/{run}/history.csv",
        metrics="results/runs/{run}/metrics.json",
        model="results/runs/{run}/model.keras",
        params="results/runs/{run}/params.yaml",
    params:
        run=run_params,
    log:
        "logs/train/{run}.log",
    benchmark:
        "benchmarks/train/{run}.tsv"
    threads: config["threads"]
    script:
        "../scripts/train.py"
