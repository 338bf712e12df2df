"""The series cap, written once: the first ``limit`` label sets keep their labels, and a later
one is counted under its overflow label set instead (a route of ``<overflow>``), which takes
one place under the cap itself. Each store applies it as series appear; the merge of several
workers' files applies it again in one fixed order, so a label set never flips to
``<overflow>`` between scrapes."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["OVERFLOW", "SeriesCap"]

OVERFLOW = "<overflow>"

K = TypeVar("K")


class SeriesCap(Generic[K]):
    """Decides, once per label set, whether it keeps its labels."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # label set -> whether it kept its labels; the first decision stands. The label sets
        # are bounded by the app (route templates, known methods, status codes), never by
        # what a client sends, so remembering the refused ones costs bounded memory.
        self.kept: dict[K, bool] = {}

    def keeps(self, label_set: K, overflow: K) -> bool:
        """True if ``label_set`` keeps its labels; False if it counts under ``overflow``."""
        found = self.kept.get(label_set)
        if found is not None:
            return found
        if len(self.kept) >= self.limit and label_set != overflow:
            self.kept[label_set] = False
            self.kept.setdefault(overflow, True)
            return False
        self.kept[label_set] = True
        return True
