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
        plan=PLAN.as_dict(),
        code=CODE["aggregate"],
    script:
        "../scripts/run_table.py"


rule train:
    """A pack of runs (one by default; config key `pack`) trained in one process. Each run writes
    its own folder: history.csv epoch by epoch, resuming after a kill; then its best epoch's model,
    the final model, metrics and held-out predictions. The manifest lists the finished runs.
    """
    input:
        unpack(pack_inputs),
    output:
        paths.PACK,
    log:
        "logs/train/{pack}.log",
    benchmark:
        "benchmarks/train/{pack}.tsv"
    conda:
        "../envs/cnnreg.yaml"
    threads: config["threads"]
    resources:
        **partition("gpu"),
        runtime=pack_runtime,
        mem_mb=pack_mem_mb,
        gpu=config["gpus_per_job"],
    params:
        members=pack_members,
        concurrent=PACKING["concurrent"],
        execution=EXECUTION,
        code=CODE["train"],
    script:
        "../scripts/train.py"
