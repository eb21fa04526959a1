from cnnreg.atomic import write_atomic
from cnnreg.run_metrics import runs_metrics_table
from cnnreg.studies import Plan

plan = Plan.from_dict(snakemake.params.plan)
table = runs_metrics_table(plan, snakemake.params.run_dirs, snakemake.params.positive_classes)
write_atomic(snakemake.output[0], lambda tmp: table.to_csv(tmp, sep="\t", index=False))
