from cnnreg.lab_sheet import read_section, write_lab_sheet

sheet = snakemake.output[0]
sections = [read_section(spec, sheet) for spec in snakemake.params.sections]
write_lab_sheet(sections, sheet, generated=snakemake.params.generated)
