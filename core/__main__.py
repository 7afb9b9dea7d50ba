"""``python -m hqf``: the ``hqf`` command (what ``torchrun … -m hqf run`` starts in each rank)."""

from hqf.cli import main

main(prog_name="hqf")
