"""ELECTRA's optimizer recipe: AdamW (wd 0.01, none on LayerNorm/bias), global-norm clipping, the official
warmup x linear-decay schedule, and layer-wise learning-rate decay for fine-tuning.

Deliberate deviation: the official AdamWeightDecayOptimizer has no bias correction; Paddle's fused AdamW kernel has
it. The correction factor is within 0.1% of 1 after ~7,000 steps and matters only while the LR is still warming up,
so we keep the fast fused kernel (documented in the README).
"""
from __future__ import annotations

import re
from typing import Callable, Optional

import paddle

NO_DECAY = re.compile(r"(layer_norm|LayerNorm|bias)")


def linear_warmup_decay(peak_lr: float, warmup_steps: int, total_steps: int, power: float = 1.0):
    """The official schedule: peak * (1 - min(t, T)/T)^power * min(1, t/W). Warmup multiplies the decayed value,
    so at t = W the LR is peak * (1 - W/T), and at t = 0 it is 0, as in the reference."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")

    def factor(step: int) -> float:
        decay = (1.0 - min(step, total_steps) / total_steps) ** power
        warm = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
        return decay * warm

    return paddle.optimizer.lr.LambdaDecay(learning_rate=peak_lr, lr_lambda=factor)


def layer_depth(name: str, num_layers: int) -> int:
    """Depth for layer-wise decay: 0 embeddings (and their projection), k+1 encoder layer k, n+2 the head."""
    if name.startswith(("electra.embeddings.", "electra.embeddings_project.")):
        return 0
    match = re.match(r"electra\.encoder\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 2


def layerwise_multiplier(name: str, num_layers: int, decay: float) -> float:
    """decay^(n + 2 - depth): the head gets 1, the top layer decay^2 (the official off-by-one, kept), embeddings
    decay^(n+2)."""
    return decay ** (num_layers + 2 - layer_depth(name, num_layers))


def build_optimizer(model, lr_schedule, weight_decay: float = 0.01, layerwise_decay: Optional[float] = None,
                    clip_norm: Optional[float] = 1.0, epsilon: float = 1e-6, num_layers: Optional[int] = None,
                    multiplier: Optional[Callable[[str], float]] = None) -> paddle.optimizer.AdamW:
    """AdamW over `model`'s (deduplicated) parameters; param groups carry the layer-wise LR multipliers."""
    named = list(model.named_parameters())
    if layerwise_decay is not None and multiplier is None:
        if num_layers is None:
            num_layers = model.config.num_hidden_layers
        multiplier = lambda name: layerwise_multiplier(name, num_layers, layerwise_decay)  # noqa: E731
    groups = {}
    for name, param in named:
        if param.stop_gradient:
            continue
        ratio = multiplier(name) if multiplier else 1.0
        groups.setdefault(ratio, []).append(param)
    decay_names = {param.name for name, param in named if not NO_DECAY.search(name)}
    parameters = [{"params": params, "learning_rate": ratio} for ratio, params in sorted(groups.items())]
    return paddle.optimizer.AdamW(
        learning_rate=lr_schedule, parameters=parameters, beta1=0.9, beta2=0.999, epsilon=epsilon,
        weight_decay=weight_decay, apply_decay_param_fun=lambda pname: pname in decay_names,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(clip_norm) if clip_norm else None)


def global_grad_norm(parameters) -> float:
    """L2 norm over all gradients (before clipping), for logging."""
    # g * g, not g ** 2: Paddle's CPU pow kernel made this logging line 6% of the demo's step (bench/profile_step.py)
    squares = [paddle.sum(g * g) for g in (p.grad.astype("float32") for p in parameters if p.grad is not None)]
    if not squares:
        return 0.0
    return float(paddle.sqrt(paddle.add_n(squares)))
