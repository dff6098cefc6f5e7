"""`python -m pretrain.demo` (`make demo`): the pipeline of pretrain/demo/pipeline.py."""
import sys

from pretrain.demo.pipeline import main

sys.exit(main())
