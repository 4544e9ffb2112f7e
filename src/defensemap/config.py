"""Where defensemap keeps its data; always passed explicitly, never read at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "DEFENSEMAP_HOME"
STORE_FILENAME = "defensemap.sqlite"


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the data home and the knowledge store inside it."""

    home: Path

    @property
    def store_path(self) -> Path:
        return self.home / STORE_FILENAME

    @classmethod
    def resolve(cls, home: Path | str | None = None) -> Settings:
        """``--home`` wins, then ``$DEFENSEMAP_HOME``, then the platform's user data dir."""
        if home:
            return cls(Path(home).expanduser())
        env = os.environ.get(HOME_ENV)
        if env:
            return cls(Path(env).expanduser())
        from platformdirs import user_data_dir

        return cls(Path(user_data_dir("defensemap", appauthor=False)))
