from cnnreg.atomic import write_atomic
from cnnreg.studies import Plan, runs_table

table = runs_table(Plan.from_dict(snakemake.params.plan))
write_atomic(snakemake.output[0], lambda tmp: table.to_csv(tmp, sep="\t", index=False))
