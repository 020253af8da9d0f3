"""Where the data embedded in the package lives (each dataset with its SOURCE.md): the defaults of every input."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
LANDING_DIR = DATA_DIR / "landing"
COUNTRIES_VECTOR = DATA_DIR / "naturalearth_10m_admin0" / "ne_10m_admin_0_countries_deu.geojson.zip"
