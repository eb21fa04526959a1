from cnnreg.studies import runs_table

runs_table(snakemake.params.plan).to_csv(snakemake.output[0], sep="\t", index=False)
