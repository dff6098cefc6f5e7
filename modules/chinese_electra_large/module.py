"""PaddleHub module chinese-electra-large: 324M parameters, 24-layer ELECTRA discriminator (HFL Chinese ELECTRA).

Generated from paddle_electra/hub/module.py.tmpl; do not edit. All the logic is in
paddle_electra.hub.module.ElectraHubModule; hub reads the @moduleinfo values below with `ast`, so they stay literals.
"""
from paddlehub.module.module import moduleinfo

from paddle_electra.hub.module import ElectraHubModule


@moduleinfo(
    name="chinese-electra-large",
    version="2.0.2",
    summary="chinese-electra-large, 24-layer, 1024-hidden, 16-heads, 324M parameters. Pretrained on Chinese Wikipedia and general text, 5.4B tokens.",
    author="ymcui (HFL); paddle-electra port",
    author_email="",
    type="nlp/semantic_model",
    meta=ElectraHubModule,
)
class ChineseElectraLarge(ElectraHubModule):
    """chinese-electra-large as a PaddleHub module (tasks and methods: see ElectraHubModule)."""

    def __init__(self, task=None, load_checkpoint=None, label_map=None, num_classes=2, suffix=False, **kwargs):
        super(ChineseElectraLarge, self).__init__(
            task=task, load_checkpoint=load_checkpoint, label_map=label_map, num_classes=num_classes, suffix=suffix,
            **kwargs)
