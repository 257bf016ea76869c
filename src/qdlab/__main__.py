"""``python -m qdlab`` = the ``qdlab`` command."""

from qdlab.cli.entry import main

if __name__ == "__main__":
    main(prog_name="qdlab")
