"""Report categories, one per lab task, named so that Snakemake's report lists them in task order.

Snakemake 9's HTML report sorts its categories by name (``localeCompare`` in
``snakemake/report/html_reporter/template/components/menu.js``), which puts "Task 10: ..." before
"Task 1a/1b: ..." and "Task 2: ...". Each category is therefore its title after a zero-padded
position, e.g. "01. Task 1a/1b: ...", so that the names differ first in digits of equal width.
"""

import re

#: The leading task number of a title: "Task 5: ..." → 5, "Tasks 8/9: ..." → 8.
TASK_NUMBER = re.compile(r"^\s*tasks?\s+(\d+)", re.IGNORECASE)


def task_number(title):
    """The task number a title starts with, or None."""
    match = TASK_NUMBER.match(title)
    return int(match.group(1)) if match else None


def report_categories(study_titles, inserted=()):
    """Report category of each title: its position in the report, then the title.

    Parameters
    ----------
    study_titles : sequence of str
        The studies' titles, in the order the config declares the studies (that order is kept).
    inserted : sequence of str
        Titles of categories that are no study (task 5's galleries): each goes before the first
        study whose task number is larger than its own, or last when there is none.

    Returns
    -------
    dict
        Title → category name, e.g. "Task 2: dropout" → "03. Task 2: dropout".
    """
    order = list(dict.fromkeys(study_titles))
    for title in inserted:
        if title not in order:
            order.insert(_insertion_point(order, task_number(title)), title)
    width = len(str(len(order)))
    return {title: f"{position:0{width}d}. {title}" for position, title in enumerate(order, start=1)}


def _insertion_point(order, number):
    """Index of the first title whose task number is larger than `number` (the end if none)."""
    if number is not None:
        for index, title in enumerate(order):
            other = task_number(title)
            if other is not None and other > number:
                return index
    return len(order)


def leading_category(categories, title):
    """A category named so that it is listed before all of `categories` (position 0)."""
    width = len(next(iter(categories.values())).split(".")[0]) if categories else 1
    return f"{0:0{width}d}. {title}"
