rule extract_features:
    """ImageNet VGG16 (include_top=False, frozen) features of a dataset, once for every head run."""
    input:
        cache=paths.CACHE,
        weights=extraction_weights,
    output:
        features=paths.FEATURES,
        summary=paths.FEATURES_SUMMARY,
    log:
        "logs/extract_features/{dataset}-{height}x{width}x{channels}.log",
    benchmark:
        "benchmarks/extract_features/{dataset}-{height}x{width}x{channels}.tsv"
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        height="[0-9]+",
        width="[0-9]+",
        channels="[13]",
    conda:
        "../envs/cnnreg.yaml"
    threads: config["threads"]
    resources:
        **partition("gpu"),
        mem_mb=8000,
        runtime=30,
        gpu=config["gpus_per_job"],
    params:
        code=CODE["extract_features"],
    script:
        "../scripts/extract_features.py"
