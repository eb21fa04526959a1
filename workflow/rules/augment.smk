rule augment_gallery:
    """Lab task 5: skimage transforms (5a) and the training augmentation's own draws (5b)."""
    input:
        gallery_image,
    output:
        skimage=report(
            f"{paths.GALLERY}/skimage.png",
            caption="../report/skimage.rst",
            category=GALLERY_CATEGORY,
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "gallery": "5a: scikit-image transforms"},
        ),
        skimage_csv=f"{paths.GALLERY}/skimage.csv",
        generator=report(
            f"{paths.GALLERY}/generator.png",
            caption="../report/generator.rst",
            category=GALLERY_CATEGORY,
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "gallery": "5b: training augmentation"},
        ),
        generator_json=f"{paths.GALLERY}/generator.json",
    log:
        "logs/augment_gallery/{dataset}.log",
    localrule: True
    conda:
        "../envs/cnnreg.yaml"
    params:
        gallery=GALLERY,
        code=CODE["gallery"],
    script:
        "../scripts/augment_gallery.py"
