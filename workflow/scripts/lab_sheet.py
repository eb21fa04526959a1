from cnnreg.folders import is_generated
from cnnreg.lab_sheet import read_section, write_lab_sheet

# Read when the sheet is made (not a param): a finished sheet needs no data to stay current.
generated = [name for name, path in snakemake.params.datasets.items() if is_generated(path)]
sheet = snakemake.output[0]
sections = [read_section(spec, sheet) for spec in snakemake.params.sections]
write_lab_sheet(sections, sheet, generated=generated)
