from cnnreg.atomic import write_atomic
from cnnreg.run_metrics import runs_metrics_table

table = runs_metrics_table(snakemake.params.plan, snakemake.params.run_dirs, snakemake.params.positive_classes)
write_atomic(snakemake.output[0], lambda tmp: table.to_csv(tmp, sep="\t", index=False))
