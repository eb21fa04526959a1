"""Report categories list the lab's tasks in order, whatever the report's string collation."""

from pathlib import Path

import yaml

from cnnreg.categories import report_categories, task_number

GALLERY = "Task 5: augmentation galleries"


def lab_titles():
    config = yaml.safe_load((Path(__file__).parents[1] / "config/config.yaml").read_text())
    return [spec["title"] for spec in config["studies"].values()], config["augmentation_gallery"]["title"]


def test_the_lab_categories_sort_in_task_order():
    titles, gallery = lab_titles()
    categories = report_categories(titles, [gallery])
    listed = [title for title, _ in sorted(categories.items(), key=lambda item: item[1])]
    assert [task_number(t) for t in listed] == [1, 1, 2, 3, 4, 5, 6, 7, 8, 10]
    assert listed == [*titles[:5], gallery, *titles[5:]]  # declared order, the gallery by its number
    # Plain string order puts task 10 first; the names differ first in equal-width digits, so
    # any collation (Snakemake's menu sorts with JavaScript's localeCompare) keeps task order.
    assert sorted(titles)[0].startswith("Task 10")
    prefixes = [name.split(".")[0] for name in categories.values()]
    assert len(set(prefixes)) == len(prefixes) and {len(p) for p in prefixes} == {2}
    assert categories[titles[0]] == "01. Task 1a/1b: batch normalization (AlexNet, LR 1e-4)"


def test_declared_order_is_kept_and_unnumbered_extras_go_last():
    categories = report_categories(["Task 3: b", "Task 1: a", "no number"], ["Galleries"])
    assert list(categories.values()) == ["1. Task 3: b", "2. Task 1: a", "3. no number", "4. Galleries"]
    assert report_categories(["Task 4: x", "Task 6: y"], [GALLERY])[GALLERY] == "2. Task 5: augmentation galleries"
    assert report_categories(["Task 4: x"], [GALLERY])[GALLERY] == "2. Task 5: augmentation galleries"
