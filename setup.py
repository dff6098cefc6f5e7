"""paddle-electra: Chinese ELECTRA on PaddlePaddle. `pip install -e .[test]` (the Makefile does it in .venv)."""
from setuptools import find_packages, setup

# The stack that installs and imports together on Python 3.11 (see README "Install"): paddlehub 2.4.0 pulls versions
# that break imports unless huggingface_hub, aistudio-sdk and protobuf are held back; numpy 2.4 breaks float(tensor).
INSTALL_REQUIRES = [
    "paddlepaddle==3.3.1",  # GPU users: install paddlepaddle-gpu==3.3.1 first (see README)
    "paddlehub==2.4.0",
    "paddlenlp==2.8.1",
    "visualdl==2.5.3",
    "huggingface_hub<0.27",
    "aistudio-sdk==0.2.6",
    "datasets<3",
    "protobuf==3.20.3",
    "numpy<2.4",
    "tokenizers==0.20.3",
    "safetensors==0.8.0",
    "tqdm>=4.66",
    "snownlp==0.12.3",
    "nltk==3.9.1",
    "matplotlib>=3.8",
    "psutil>=5.9",
    "crc32c>=2.4",
    "scikit-learn>=1.4,<2",  # the demo's bag-of-characters baseline (TF-IDF + logistic regression); brings scipy
    "jieba==0.42.1",  # Chinese word boundaries for whole-word masking (pretrain/data.py --word-boundaries jieba)
]
EXTRAS = {
    "test": ["pytest>=8", "hypothesis>=6.100", "torch==2.13.0", "transformers==4.46.3", "ruff==0.17.6",
             # reference implementations the tests compare against (a missing one fails under CI=true)
             "scikit-learn==1.9.1", "seqeval==1.2.2"],
    "export": ["onnxruntime>=1.17", "paddle2onnx==2.1.0", "onnxoptimizer>=0.3"],
}

setup(
    name="paddle-electra",
    version="0.1.0",
    description="Chinese ELECTRA on PaddlePaddle: models, converters, PaddleHub modules, pretraining, fine-tuning",
    python_requires=">=3.9",
    packages=find_packages(include=["paddle_electra", "paddle_electra.*", "pretrain", "pretrain.*", "finetune",
                                    "finetune.*", "converters", "converters.*", "modules", "modules.*"]),
    package_data={"paddle_electra": ["configs/*.json", "hub/module.py.tmpl"], "pretrain": ["configs/*.json"],
                  "modules": ["**/*.py", "**/*.md"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
