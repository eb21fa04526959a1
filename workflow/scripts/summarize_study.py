from cnnreg.aggregate import write_study_outputs

write_study_outputs(
    snakemake.params.study,
    snakemake.params.runs,
    snakemake.params.run_dirs,
    dict(snakemake.output),
    other=snakemake.params.other,
    features=snakemake.input.features,
)
