rule gradcam:
    """Lab task 10: Grad-CAM and Grad-CAM++ of a trained run on its validation images."""
    input:
        model="results/runs/{run}/model.keras",
        cache=run_cache,
        evidence=evidence_boxes,
    output:
        gallery=report(
            "results/gradcam/{run}/gallery.png",
            caption="../report/gradcam.rst",
            category=lambda wildcards: gradcam_study(wildcards).title,
            subcategory="Grad-CAM",
            labels=lambda wildcards: {"run": wildcards.run, "item": "gallery"},
        ),
        cams="results/gradcam/{run}/cams.npz",
        table="results/gradcam/{run}/gradcam.csv",
        summary="results/gradcam/{run}/summary.json",
        html=report(
            "results/gradcam/{run}/table.html",
            caption="../report/gradcam_table.rst",
            category=lambda wildcards: gradcam_study(wildcards).title,
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
    params:
        run=run_params,
        settings=config.get("gradcam", {}),
        layer=explained_layer,
        code=CODE["gradcam"],
    script:
        "../scripts/gradcam.py"
