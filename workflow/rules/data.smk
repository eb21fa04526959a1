rule prepare_data:
    """Decode a dataset folder once per (image size, channels) into the cache all runs read."""
    input:
        dataset_folder,
    output:
        paths.CACHE,
    log:
        "logs/prepare_data/{dataset}-{height}x{width}x{channels}.log",
    wildcard_constraints:
        dataset="[A-Za-z0-9_]+",
        height="[0-9]+",
        width="[0-9]+",
        channels="[13]",
    priority: 10
    conda:
        "../envs/cnnreg.yaml"
    resources:
        **partition("cpu"),
        mem_mb=4000,
        runtime=30,
    params:
        classes=dataset_classes,
        images=dataset_images,
        code=CODE["prepare_data"],
    script:
        "../scripts/prepare_data.py"
