"""Developer tool: rebuild the initial migration from models/tables.py (before the first release only).

    python -m models.migrations.regenerate
"""

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from models.db import MIGRATIONS_DIR

if __name__ == "__main__":
    for old in (MIGRATIONS_DIR / "versions").glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", f"sqlite:///{Path(tmp) / 'gen.db'}")
        command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
