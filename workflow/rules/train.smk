rule run_table:
    """Every unique run, every parameter, and the studies that use it."""
    output:
        paths.RUN_TABLE,
    log:
        "logs/run_table.log",
    localrule: True
    conda:
        "../envs/cnnreg.yaml"
    params:
        plan=PLAN,
        code=CODE["aggregate"],
    script:
        "../scripts/run_table.py"


rule train:
    """One run: fit the model, writing history.csv epoch by epoch; resumes after a kill. Its best
    epoch's model and the held-out predictions are written at the end."""
    input:
        unpack(train_inputs),
        images=run_cache,
    output:
        history=paths.run_file("{run}", "history.csv"),
        metrics=paths.run_file("{run}", "metrics.json"),
        model=paths.run_file("{run}", "model.keras"),
        best=paths.run_file("{run}", "best.keras"),
        predictions=paths.run_file("{run}", "predictions.csv"),
        params=paths.run_file("{run}", "params.yaml"),
    log:
        "logs/train/{run}.log",
    benchmark:
        "benchmarks/train/{run}.tsv"
    group:
        "pack"
    conda:
        "../envs/cnnreg.yaml"
    threads: config["threads"]
    resources:
        runtime=train_runtime,
        mem_mb=train_mem_mb,
    params:
        run=run_params,
        run_dir=run_folder,
        code=CODE["train"],
    script:
        "../scripts/train.py"
