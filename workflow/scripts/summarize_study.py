from cnnreg.aggregate import write_study_outputs
from cnnreg.studies import Study

other = snakemake.params.other
study = Study.from_dict(snakemake.params.study)
write_study_outputs(
    study,
    snakemake.params.runs,
    snakemake.params.run_dirs,
    dict(snakemake.output),
    other=Study.from_dict(other) if other else None,
    features=snakemake.input.features,
    gradcam=dict(zip(study.runs, snakemake.input.gradcam, strict=True)) if study.gradcam else {},
)
