"""``python -m napari_slideseg.cli``: the ``slideseg`` command."""

import sys

from . import main

sys.exit(main())
