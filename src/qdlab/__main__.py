"""``python -m qdlab`` = the ``qdlab`` command."""

from qdlab.cli.main import app

if __name__ == "__main__":
    app(prog_name="qdlab")
