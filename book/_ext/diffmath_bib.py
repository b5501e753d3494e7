"""Citation labels for the book: Su's articles are cited by their part number.

pybtex's ``alpha`` style would label the ten kexue.fm articles ``Su23a`` … ``Su24d`` (by year),
which says nothing about which article is meant. This style labels ``su-part<N>`` as ``Su<N>``
(``[Su18]`` is part 18) and ``su-multimodal-1`` as ``SuMM1``; every other entry keeps its
``alpha`` label. Loaded as a local Sphinx extension from ``_config.yml``.
"""

import re

from pybtex.plugin import register_plugin
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels.alpha import LabelStyle as AlphaLabelStyle


class LabelStyle(AlphaLabelStyle):
    def format_labels(self, sorted_entries):
        sorted_entries = list(sorted_entries)
        for entry, label in zip(sorted_entries, super().format_labels(sorted_entries)):
            key = getattr(entry, "key", "") or ""
            part = re.fullmatch(r"su-part(\d+)", key)
            if part:
                yield f"Su{part.group(1)}"
            elif key.startswith("su-multimodal-"):
                yield "SuMM" + key.rsplit("-", 1)[1]
            else:
                yield label


class Style(AlphaStyle):
    default_label_style = LabelStyle


def setup(app):
    register_plugin("pybtex.style.formatting", "diffmath", Style)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
