rule gradcam:
    """Lab task 10: Grad-CAM and Grad-CAM++ of a trained run on its validation images."""
    input:
        pack=lambda wildcards: run_pack(wildcards.run),
        cache=run_cache,
        evidence=evidence_boxes,
    output:
        gallery=report(
            f"{paths.GRADCAM}/gallery.png",
            caption="../report/gradcam.rst",
            category=gradcam_category,
            subcategory="Grad-CAM",
            labels=lambda wildcards: {"run": wildcards.run, "item": "gallery"},
        ),
        cams=f"{paths.GRADCAM}/cams.npz",
        table=f"{paths.GRADCAM}/gradcam.csv",
        summary=f"{paths.GRADCAM}/summary.json",
        html=report(
            f"{paths.GRADCAM}/table.html",
            caption="../report/gradcam_table.rst",
            category=gradcam_category,
            subcategory="Grad-CAM",
            labels=lambda wildcards: {
                "run": wildcards.run,
                "item": "faithfulness table",
            },
        ),
    log:
        "logs/gradcam/{run}.log",
    benchmark:
        "benchmarks/gradcam/{run}.tsv"
    conda:
        "../envs/cnnreg.yaml"
    threads: config["threads"]
    resources:
        **partition("gpu"),
        mem_mb=8000,
        runtime=30,
        gpu=config["gpus_per_job"],
    params:
        run=run_params,
        model=lambda wildcards: paths.run_file(wildcards.run, "model.keras"),
        settings=config.get("gradcam", {}),
        layer=explained_layer,
        code=CODE["gradcam"],
    script:
        "../scripts/gradcam.py"
