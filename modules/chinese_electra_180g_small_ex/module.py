"""PaddleHub module chinese-electra-180g-small-ex: 25M parameters, 24-layer ELECTRA discriminator (HFL Chinese ELECTRA).

Generated from paddle_electra/hub/module.py.tmpl; do not edit. All the logic is in
paddle_electra.hub.module.ElectraHubModule; hub reads the @moduleinfo values below with `ast`, so they stay literals.
"""
from paddlehub.module.module import moduleinfo

from paddle_electra.hub.module import ElectraHubModule


@moduleinfo(
    name="chinese-electra-180g-small-ex",
    version="2.0.2",
    summary="chinese-electra-180g-small-ex, 24-layer, 256-hidden, 4-heads, 25M parameters. Pretrained on Chinese Wikipedia, general text and CommonCrawl, 180G.",
    author="ymcui (HFL); paddle-electra port",
    author_email="",
    type="nlp/semantic_model",
    meta=ElectraHubModule,
)
class ChineseElectra180gSmallEx(ElectraHubModule):
    """chinese-electra-180g-small-ex as a PaddleHub module (tasks and methods: see ElectraHubModule)."""

    def __init__(self, task=None, load_checkpoint=None, label_map=None, num_classes=2, suffix=False, **kwargs):
        super(ChineseElectra180gSmallEx, self).__init__(
            task=task, load_checkpoint=load_checkpoint, label_map=label_map, num_classes=num_classes, suffix=suffix,
            **kwargs)
