from cnnreg.aggregate import write_study_outputs
from cnnreg.studies import Study

other = snakemake.params.other
write_study_outputs(
    Study.from_dict(snakemake.params.study),
    snakemake.params.runs,
    snakemake.params.run_dirs,
    dict(snakemake.output),
    other=Study.from_dict(other) if other else None,
    features=snakemake.input.features,
)
