"""`python -m modules.serve -m NAME [...]`: serve installed modules on 127.0.0.1 (paddle_electra/hub/serve.py)."""
import sys

from paddle_electra.hub.serve import main

if __name__ == "__main__":
    sys.exit(main())
