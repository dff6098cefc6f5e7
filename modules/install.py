"""`python -m modules.install ARCHIVE [--hub-home DIR]`: check and install a module archive (paddle_electra/hub/install.py)."""
import sys

from paddle_electra.hub.install import main

if __name__ == "__main__":
    sys.exit(main())
