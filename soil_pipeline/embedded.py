"""Where the data embedded in the package lives (each dataset with its SOURCE.md): the defaults of every input."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
