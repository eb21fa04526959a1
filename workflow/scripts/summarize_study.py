from cnnreg.aggregate import write_study_outputs

run_dirs = {path.split("/")[-2]: path.rsplit("/", 1)[0] for path in snakemake.input.histories}
write_study_outputs(
    snakemake.params.study,
    snakemake.params.runs,
    run_dirs,
    dict(snakemake.output),
    other=snakemake.params.other,
    features=snakemake.input.features,
)
